"""The admin UI in a real headless Chromium (/usr/bin/chromium, driven by Playwright) against a real `tsm serve`
(gunicorn) on a fresh lab home with the demo people (`tsm demo`), a wearable's SE discovered from a simulated
card file and a transit service opened on it through the CLI (docs/operations.md, "Admin UI").

An officer signs in with TOTP (a wrong code first), sees the dashboard, keys and audit log, verifies the chain,
enrolls a custodian (QR shown once; the custodian then signs in with it) and signs out; two officers run a key
generation ceremony, each action re-authenticated with a fresh TOTP code, and download its evidence; an operator
reports the service lost and unlocks it; the SP's person sees its metering. Screenshots of the main pages go to a
temporary directory whose path is printed (run with -s to see it)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pyotp
import pytest

from tests.serving import TSM, served
from tests.web.test_demo_cli import demo_people

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (make deps installs it)")
GP_TEST_KEY = "404142434445464748494A4B4C4D4E4F"
SP = "demo-transit"


def cli(home: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "TSM_DATABASE_URL")}
    env.update(TSM_HOME=str(home), TSM_OPERATOR="console")
    proc = subprocess.run([TSM, *args], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else ""


@pytest.fixture(scope="module")
def site(tmp_path_factory):  # type: ignore[no-untyped-def]
    """A served home: demo people, an SE with an open transit service; (base URL, people, SE id, service id)."""
    home = tmp_path_factory.mktemp("ui-home")
    cli(home, "init", "--test-token")
    people = demo_people(home)
    cli(home, "keys", "import-test", "--label", "gp-test", "--type", "aes", "--hex", GP_TEST_KEY)
    cli(home, "keys", "import-test", "--label", "vendor-ssd", "--type", "aes", "--usage", "SSD_KEYSET", "--hex",
        GP_TEST_KEY)
    card = home / "watch.json"
    cli(home, "cardsim", "new", "--profile", "wearable", "--out", str(card))
    se_id = cli(home, "se", "discover", "--card", str(card), "--key", "gp-test", "--device-kind", "wearable",
                "--initial-ssd-key", "vendor-ssd")
    cli(home, "cardsim", "cap", "transit", "--out", str(home / "transit.cap"))
    app_id = cli(home, "app", "submit", "--sp", SP, "--cap", str(home / "transit.cap"), "--perso",
                 "0101#purse=0978000000000000C35000002710 8001@key")
    cli(home, "app", "review", app_id, "--approve")
    service_id = cli(home, "service", "open", se_id, app_id, "--card", str(card))
    with served(home, "/login", TSM_LOGIN_RATE_LIMIT="100 per minute") as (base, log):
        yield base, people, se_id, service_id, log


@pytest.fixture(scope="module")
def shots(tmp_path_factory):  # type: ignore[no-untyped-def]
    path = Path(os.environ.get("TSM_UI_SCREENSHOTS") or tmp_path_factory.mktemp("ui-screenshots"))
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nadmin UI screenshots: {path}")
    return path


@pytest.fixture
def page(shots):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        tab = browser.new_page()
        violations: list[str] = []
        tab.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text
               else None)
        yield tab
        browser.close()
        assert not violations, violations


def sign_in(page, base: str, name: str, password: str, code: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{base}/login")
    page.fill("#name", name)
    page.fill("#password", password)
    page.fill("#code", code)
    page.click("button[type=submit]")


def sign_out(page) -> None:  # type: ignore[no-untyped-def]
    page.click("form.who button")
    page.wait_for_selector("text=You are signed out.")


def nav(page) -> list[str]:  # type: ignore[no-untyped-def]
    return [a.strip() for a in page.locator("nav[aria-label=main] a").all_inner_texts()]


def test_an_officer_signs_in_with_totp_and_looks_around(site, page, shots, codes):
    base, people, _, _, log = site
    password, secret = people["demo-officer"]
    wrong = "000000" if pyotp.TOTP(secret).now() != "000000" else "111111"
    sign_in(page, base, "demo-officer", password, wrong)
    assert page.locator(".flash.error").inner_text() == "Name, password or code is wrong."
    page.screenshot(path=str(shots / "login-wrong-code.png"), full_page=True)
    sign_in(page, base, "demo-officer", password, codes("demo-officer"))
    page.wait_for_selector("h1:text('Dashboard')")
    assert page.locator("#hsm .status-ok").inner_text() == "ok"
    assert page.locator("#audit-chain .status-ok").inner_text() == "ok"
    assert nav(page) == ["Dashboard", "Keys", "Ceremonies", "Secure elements", "Jobs", "Metering", "Audit log",
                         "Users and roles"]
    page.screenshot(path=str(shots / "dashboard.png"), full_page=True)
    page.click("nav >> text=Keys")
    assert page.locator("#inventory").inner_text().count("gp-test") == 1
    page.screenshot(path=str(shots / "keys.png"), full_page=True)
    page.click("nav >> text=Audit log")
    page.click("text=Verify the whole chain")
    assert "Audit chain intact" in page.locator(".flash.ok").inner_text()
    page.screenshot(path=str(shots / "audit.png"), full_page=True)

    page.click("nav >> text=Users and roles")
    page.fill("#name", "ui-custodian")
    page.select_option("#role", "custodian")
    page.fill("#password", "custodian password 1")
    page.click("button:text-is('Enroll')")
    page.wait_for_selector(".qr svg")
    custodian_secret = page.locator("#totp-secret").inner_text()
    page.screenshot(path=str(shots / "enrolled-qr.png"), full_page=True)
    sign_out(page)
    assert password not in log.read_text() and secret not in log.read_text()

    sign_in(page, base, "ui-custodian", "custodian password 1", pyotp.TOTP(custodian_secret).now())
    page.wait_for_selector("h1:text('Dashboard')")
    assert nav(page) == ["Dashboard", "Keys", "Ceremonies"]
    assert page.goto(f"{base}/admin/audit/").status == 403
    sign_out(page)


def test_an_operator_reports_a_service_lost_and_unlocks_it(site, page, shots):
    base, people, se_id, service_id, _ = site
    password, secret = people["demo-operator"]
    sign_in(page, base, "demo-operator", password, pyotp.TOTP(secret).now())
    page.wait_for_selector("h1:text('Dashboard')")
    assert "Keys" not in nav(page) and "Audit log" not in nav(page)
    page.click("nav >> text=Secure elements")
    page.fill("#se_id", se_id)
    page.click("text=Search")
    page.click(f"text={se_id}")
    row = page.locator("#services tr", has_text=service_id)
    assert row.locator("td").nth(3).inner_text() == "active"
    row.locator("text=Report lost").click()
    assert re.search(r"locked_lost", page.locator(".flash.ok").inner_text())
    row = page.locator("#services tr", has_text=service_id)
    assert row.locator("td").nth(3).inner_text() == "locked_lost"
    page.screenshot(path=str(shots / "secure-element-lost.png"), full_page=True)
    row.locator("text=Unlock").click()
    row = page.locator("#services tr", has_text=service_id)
    assert row.locator("td").nth(3).inner_text() == "active"
    page.screenshot(path=str(shots / "secure-element.png"), full_page=True)
    page.click("nav >> text=Jobs")
    assert page.locator("table").inner_text().count("lock-app") >= 1
    page.screenshot(path=str(shots / "jobs.png"), full_page=True)
    sign_out(page)


def test_the_sp_sees_its_own_metering(site, page, shots):
    base, people, _, _, _ = site
    password, secret = people["demo-sp"]
    sign_in(page, base, "demo-sp", password, pyotp.TOTP(secret).now())
    page.wait_for_selector("h1:text('Jobs')")
    assert nav(page) == ["Jobs", "Metering"]
    page.click("nav >> text=Metering")
    assert page.locator("#usage tbody tr").count() == 1
    assert page.locator("#usage").inner_text().startswith("Service provider")
    assert page.locator("#downloads-chart rect.bar").count() == 1
    page.screenshot(path=str(shots / "metering.png"), full_page=True)


class Codes:
    """Fresh TOTP codes on the real clock: each code is accepted once per person, so every authentication takes a
    later 30-s step than the person's last one, within the server's window (one step either side of now; the step
    before now only while it is safely far from its end), waiting for the clock when a person runs ahead."""

    STEP, MARGIN = 30, 5

    def __init__(self, people: dict[str, tuple[str, str]]) -> None:
        self.people, self.last = people, {name: 0 for name in people}

    def __call__(self, name: str) -> str:
        now = time.time()
        current = int(now // self.STEP)
        earliest = current - 1 if now % self.STEP < self.STEP - self.MARGIN else current
        step = max(self.last[name] + 1, earliest)
        if step > current + 1:
            time.sleep((step - 1) * self.STEP - now + 0.5)
        self.last[name] = step
        return pyotp.TOTP(self.people[name][1]).at(step * self.STEP)


@pytest.fixture(scope="module")
def codes(site) -> Codes:  # type: ignore[no-untyped-def]
    """The site's officers' codes, shared by the module's tests (a code used by one test is spent for the next)."""
    return Codes(site[1])


def reauth(page, form: str, name: str, codes: Codes) -> None:  # type: ignore[no-untyped-def]
    """Fill a ceremony form's re-authentication (password, a fresh code) and submit it."""
    page.fill(f"#{form}-password", codes.people[name][0])
    page.fill(f"#{form}-code", codes(name))
    page.click(f"#{form} button[type=submit]")


def test_two_officers_run_a_key_generation_ceremony(site, shots, codes):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    base, people, _, _, log = site
    a, b = "demo-officer2", "demo-officer"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        violations: list[str] = []
        pages = {}
        for name in (a, b):
            tab = browser.new_context().new_page()
            tab.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text
                   else None)
            sign_in(tab, base, name, people[name][0], codes(name))
            tab.wait_for_selector("h1:text('Dashboard')")
            pages[name] = tab
        pa, pb = pages[a], pages[b]
        pa.click("nav >> text=Ceremonies")
        pa.locator("#types tr", has_text="key-generation").locator("text=Start").click()
        pa.fill("#param-label", "kmc-browser")
        pa.screenshot(path=str(shots / "ceremony-start.png"), full_page=True)
        reauth(pa, "start", a, codes)
        assert "you are its requester" in pa.locator(".flash.ok").inner_text()
        cid = pa.url.rsplit("/", 1)[1]

        pb.goto(f"{base}/admin/")
        pb.locator("#pending-ceremonies").locator(f"text={cid}").click()
        reauth(pb, "join", b, codes)
        assert "You joined" in pb.locator(".flash.ok").inner_text()
        reauth(pb, "approve", b, codes)
        assert "Approved step 2" in pb.locator(".flash.ok").inner_text()

        pa.reload()
        for number in (1, 2):
            reauth(pa, "sign", a, codes)
            assert pa.locator(".flash.ok").inner_text() == f"Step {number} signed."
        pb.reload()
        kcv = re.search(r"label_kcv=([0-9A-F]{6})", pb.locator("#steps").inner_text()).group(1)  # type: ignore[union-attr]
        pb.fill("#sign-kcv", kcv)
        reauth(pb, "sign", b, codes)
        assert pb.locator(".flash.ok").inner_text() == "Step 3 signed."
        pa.reload()
        reauth(pa, "sign", a, codes)
        assert pa.locator("#state").inner_text() == "completed"
        assert pa.locator("#steps tbody tr").count() == 4
        pa.screenshot(path=str(shots / "ceremony-completed.png"), full_page=True)
        with pa.expect_download() as download:
            pa.click("#evidence-json")
        evidence = shots / f"{cid}.json"
        download.value.save_as(str(evidence))
        pa.click("nav >> text=Keys")
        assert re.search(rf"kmc-browser.*{kcv}.*", pa.locator("#inventory").inner_text())
        browser.close()
    assert not violations, violations
    assert json.loads(evidence.read_text())["transcript"]["state"] == "completed"
    assert cli(log.parent, "ceremony", "verify", str(evidence)).startswith(cid)
    served = log.read_text()
    assert all(password not in served and secret not in served for password, secret in people.values())
