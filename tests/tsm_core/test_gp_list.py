"""`tsm gp list`: the Registry through a secure channel opened by the key service.

(a) in process: `tsm gp list --card FILE` as separate processes on a fresh $TSM_HOME (real SoftHSM2), plus
the flow itself over `LocalTransport` against cards that refuse P1 '10' or the TLV format;
(b) end to end: real pcscd + vpcd + pyscard, `tsm cardsim serve` and `tsm gp list --reader` as processes.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cardsim.state import load_card, new_card, save_card
from globalplatform.keys import KeyAlgorithm
from keyservice.errors import InvalidInput
from tests.cardsim import gp
from tests.cardsim.host import Host
from tests.tsm_core.conftest import READER, wait_for_card, wait_for_removal
from tsm_core.flows.errors import CardCryptogramMismatch
from tsm_core.flows.list_content import list_content
from tsm_core.gp.getstatus import StatusSubset
from tsm_core.transport.local import LocalTransport
from tsm_core.transport.pcscd import stop_process

TSM = str(Path(sys.executable).with_name("tsm"))
GP_KEY = "404142434445464748494A4B4C4D4E4F"
ISD = "A000000151000000"
PURSE_ELF, PURSE_MODULE = bytes.fromhex("F0000000010101"), bytes.fromhex("F000000001010101")
PURSE_APP = bytes.fromhex("F00000000101010101")
SSD = bytes.fromhex("D2760001239900")
SSD_PRIVILEGES = bytes.fromhex("C00000")  # Security Domain, DAP Verification (b8 b7 of byte 1)
SMALL_PAGE = 40  # bytes per GET STATUS response before '6310': every subset needs several pages
SERVE_STOP_TIMEOUT = 10


def tsm(home: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("SOFTHSM2_CONF", "TSM_DATABASE_URL")}
    env.update(TSM_HOME=str(home), TSM_OPERATOR="alice")
    return subprocess.run([TSM, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


def ok(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh $TSM_HOME with a test token, the AES test key `gp`, a DES3 test key and DES3 and AES KMCs."""
    path = tmp_path_factory.mktemp("gp-list-home")
    ok(tsm(path, "init", "--test-token"))
    ok(tsm(path, "keys", "import-test", "--label", "gp", "--type", "aes", "--hex", GP_KEY))
    ok(tsm(path, "keys", "import-test", "--label", "gp-des", "--type", "des3", "--hex", GP_KEY))
    ok(tsm(path, "keys", "import-test", "--label", "kmc", "--type", "des3", "--usage", "KMC", "--hex", GP_KEY))
    ok(tsm(path, "keys", "import-test", "--label", "kmc-aes", "--type", "aes", "--usage", "KMC", "--hex", GP_KEY))
    return path


def _populate(path: Path) -> None:
    """Install a purse instance and an SSD on the card (independent test host) and shrink GET STATUS pages."""
    card = load_card(path)
    card.power_on()
    host = Host(card, bytes.fromhex(GP_KEY)).open()
    for aid, privileges in ((PURSE_APP, b"\x00"), (SSD, SSD_PRIVILEGES)):
        data = gp.install_data(PURSE_ELF, PURSE_MODULE, aid, privileges)
        assert host.send(gp.install(0x0C, data))[1] == 0x9000
    card.identity.quirks.get_status_page = SMALL_PAGE
    save_card(card, path)


def _isd_auth_state(path: Path) -> tuple[int, int]:
    """(failed authentications, sequence counter) of the ISD in the state file."""
    card = load_card(path)
    sd = card.registry.isd.sd
    assert sd is not None
    return sd.failed_authentications, sd.sequence_counter


@pytest.fixture
def default_card(home: Path, tmp_path: Path) -> Path:
    path = tmp_path / "card.json"
    ok(tsm(home, "cardsim", "new", "--out", str(path)))
    _populate(path)
    return path


def _blocks(listing: str) -> dict[str, list[str]]:
    """Each entry's header line -> its indented lines."""
    blocks: dict[str, list[str]] = {}
    for block in listing.strip().split("\n\n"):
        head, *rest = block.splitlines()
        blocks[head] = [line.strip() for line in rest]
    return blocks


@pytest.mark.parametrize("level", ["01", "03", "33"])
def test_default_profile(home, default_card, level):
    listing = ok(tsm(home, "gp", "list", "--card", str(default_card), "--key", "gp", "--level", level))
    blocks = _blocks(listing)
    assert list(blocks) == [
        f"ISD: {ISD} (SECURED)",
        f"APP: {PURSE_APP.hex().upper()} (SELECTABLE)",
        f"APP: {SSD.hex().upper()} (SELECTABLE)",
        "PKG: A0000001515350 (LOADED)",
        "PKG: F0000000010101 (LOADED)",
        "PKG: F0000000020101 (LOADED)",
    ]
    assert blocks[f"ISD: {ISD} (SECURED)"][-1] == (
        "Privs:   SecurityDomain, CardLock, CardTerminate, CardReset, CVMManagement, TrustedPath, "
        "AuthorizedManagement, TokenVerification, GlobalDelete, GlobalLock, GlobalRegistry, FinalApplication, "
        "ReceiptGeneration"
    )
    assert blocks[f"APP: {PURSE_APP.hex().upper()} (SELECTABLE)"] == [f"Parent:  {ISD}", "From:    F0000000010101"]
    assert blocks[f"APP: {SSD.hex().upper()} (SELECTABLE)"] == [
        f"Parent:  {ISD}", "From:    F0000000010101", "Privs:   SecurityDomain, DAPVerification"]
    assert blocks["PKG: F0000000010101 (LOADED)"] == [f"Parent:  {ISD}", "Version: 1.0", "Applet:  F000000001010101"]
    assert _isd_auth_state(default_card)[0] == 0


def test_scp02_emv_diversified_from_a_kmc(home, tmp_path):
    path = tmp_path / "emv.json"
    ok(tsm(home, "cardsim", "new", "--profile", "scp02-emv", "--out", str(path)))
    counter = _isd_auth_state(path)[1]
    listing = ok(tsm(home, "gp", "list", "--card", str(path), "--key", "kmc", "--div", "emv", "--kvn", "1"))
    assert list(_blocks(listing)) == ["ISD: A000000003000000 (SECURED)", "PKG: A0000001515350 (LOADED)",
                                      "PKG: F0000000010101 (LOADED)", "PKG: F0000000020101 (LOADED)"]
    assert _isd_auth_state(path) == (0, counter + 1)  # one successful EXTERNAL AUTHENTICATE, saved back


def test_wrong_key_is_one_line_and_spends_no_retry(home, tmp_path):
    path = tmp_path / "emv.json"
    ok(tsm(home, "cardsim", "new", "--profile", "scp02-emv", "--out", str(path)))
    before = _isd_auth_state(path)
    proc = tsm(home, "gp", "list", "--card", str(path), "--key", "gp-des")  # the master key, not diversified
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error[cryptogram_mismatch]: the card cryptogram does not verify")
    assert "key version 01, SCP02" in lines[0] and "EXTERNAL AUTHENTICATE was not sent" in lines[0]
    assert _isd_auth_state(path) == before  # no EXTERNAL AUTHENTICATE reached the card
    # the diagnose hint in the message is runnable as printed and names the matching key
    hint = lines[0].split("(find the key: tsm ", 1)[1].rstrip(")").replace("LABEL ...", "gp-des")
    diagnosed = ok(tsm(home, *hint.split()))
    assert "use: --key gp-des --div emv" in diagnosed


def test_needs_exactly_one_of_reader_and_card(home, default_card):
    assert tsm(home, "gp", "list", "--key", "gp").returncode == 2
    both = tsm(home, "gp", "list", "--key", "gp", "--card", str(default_card), "--reader", "0")
    assert both.returncode == 2 and "exactly one" in both.stderr
    assert "not one hex byte" in tsm(home, "gp", "list", "--key", "gp", "--card", str(default_card),
                                     "--level", "1G").stderr


# ---- what the card says: SCP, "i", key versions (GPCS 2.3.1 Annex H, §11.3.3.1) ----------------------------


def _card(tmp_path: Path, profile: str) -> Path:
    """A factory-fresh card of `profile` in a state file (what `tsm cardsim new --profile` writes)."""
    path = tmp_path / f"{profile}.json"
    save_card(new_card(profile), path)
    return path


PROFILES = [  # profile, the ISD's AID, the key options (never --scp or --i: the card says)
    ("default", "A000000151000000", ("--key", "gp")),
    ("scp03-i00", "A000000151000000", ("--key", "gp")),
    ("scp03-kdf3", "A000000151000000", ("--key", "kmc-aes", "--div", "kdf3")),
    ("scp02-i55", "A000000003000000", ("--key", "gp-des")),
    ("scp02-emv", "A000000003000000", ("--key", "kmc", "--div", "emv")),
]


@pytest.mark.parametrize(("profile", "aid", "key"), PROFILES, ids=[p[0] for p in PROFILES])
def test_every_profile_without_being_told_scp_or_i(home, tmp_path, profile, aid, key):
    path = _card(tmp_path, profile)
    listing = ok(tsm(home, "gp", "list", "--card", str(path), *key))
    assert next(iter(_blocks(listing))).startswith(f"ISD: {aid} (")
    assert _isd_auth_state(path)[0] == 0


LEVELS_NOT_OFFERED = [  # profile, --level, what the card's recognition data says
    ("scp03-i00", "33", "SCP03 i=00"),
    ("scp03-i00", "13", "SCP03 i=00"),  # R-MAC without "i" b6
    ("scp02-i55", "0x33", "SCP02 i=55"),  # R-ENCRYPTION does not exist in SCP02
]


@pytest.mark.parametrize(("profile", "level", "said"), LEVELS_NOT_OFFERED)
def test_level_the_card_does_not_offer_is_refused_before_authenticating(home, tmp_path, profile, level, said):
    path = _card(tmp_path, profile)
    before = path.read_bytes()
    key = "gp" if profile.startswith("scp03") else "gp-des"
    proc = tsm(home, "gp", "list", "--card", str(path), "--key", key, "--level", level)
    assert proc.returncode == 2 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error[security_level_not_allowed]: security level {level[-2:]} asks for R-")
    assert f"recognition data (GET DATA 66): {said}" in lines[0]
    assert lines[0].endswith("INITIALIZE UPDATE was not sent")
    assert path.read_bytes() == before  # no retry spent, no counter moved: nothing was authenticated


@pytest.mark.parametrize("kvn", ["30", "0x30"])
def test_kvn_is_hex_like_the_level(home, tmp_path, kvn):
    """`--kvn 30` is key version 30h (the card's only key set), not decimal 30 (1Eh)."""
    path = _card(tmp_path, "scp03-kdf3")
    listing = ok(tsm(home, "gp", "list", "--card", str(path), "--key", "kmc-aes", "--div", "kdf3", "--kvn", kvn,
                     "--level", "0x03"))
    assert next(iter(_blocks(listing))) == f"ISD: {ISD} (SECURED)"


def test_a_key_version_the_card_does_not_have_is_named(home, tmp_path):
    path = _card(tmp_path, "default")
    for kvn in ("45", "0x45"):
        proc = tsm(home, "gp", "list", "--card", str(path), "--key", "gp", "--kvn", kvn)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.strip() == ("error[key_version_not_found]: the card has no key set with key version 45: "
                                       "INITIALIZE UPDATE answered 6A88; its key information (GET DATA E0) lists "
                                       "key version(s) FF")


# ---- the flow over LocalTransport, against cards that refuse parts of GET STATUS -----------------------------


class PickyCard:
    """A simulated card that refuses some GET STATUS variants with '6A86' (incorrect P1 P2), like older cards.

    The command still reaches the simulator, so its C-MAC chaining advances as on a card that checked the MAC
    before P1-P2.
    """

    def __init__(self, refuse_p1: int | None = None, refuse_tlv: bool = False) -> None:
        self.card = new_card(None)
        self.refuse_p1, self.refuse_tlv = refuse_p1, refuse_tlv
        self.pages = 0

    def power_on(self) -> bytes:
        return self.card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        response = self.card.transmit(apdu)
        if apdu[1] == 0xF2 and (apdu[2] == self.refuse_p1 or (self.refuse_tlv and apdu[3] & 0x02)):
            return bytes.fromhex("6A86")
        self.pages += apdu[1] == 0xF2 and response[-2:] == bytes.fromhex("6310")
        return response


def _opener(service, *labels: str, aid: bool = True):
    """The flow's channel opener, as `tsm gp list` builds it (the AID left out when `aid` is False)."""
    from keyservice.channels import ChannelSpec
    from keyservice.identity import Caller, CallerKind
    from keyservice.policy import Purpose, Request

    req = Request(Caller("alice", CallerKind.OFFICER), Purpose.SE_MANAGEMENT, "card-under-test")
    opened = []

    def open_channel(isd):
        session = service.channels.open(req, ChannelSpec(labels or ("gp",), aid=isd.aid if aid else None, i=isd.i))
        opened.append(session)
        return session

    open_channel.opened = opened  # type: ignore[attr-defined]
    return open_channel


def test_flow_falls_back_to_p1_20(service):
    card = PickyCard(refuse_p1=StatusSubset.LOAD_FILES_AND_MODULES)
    card.card.identity.quirks.get_status_page = SMALL_PAGE
    open_channel = _opener(service)
    with LocalTransport(card) as transport:
        found = list_content(transport, 0x01, open_channel)
    with pytest.raises(InvalidInput):  # the flow closed the channel: its session keys are gone
        open_channel.opened[0].wrap(bytes.fromhex("80F28002024F0000"))
    assert found.load_file_subset is StatusSubset.LOAD_FILES and found.tlv_format
    assert [e.aid.hex().upper() for e in found.load_files] == ["A0000001515350", "F0000000010101", "F0000000020101"]
    assert all(not e.modules for e in found.load_files)
    assert card.pages >= 1
    opened = service.audit.records(1)[0]  # one record per channel, written before EXTERNAL AUTHENTICATE left
    assert (opened.operation, opened.outcome, opened.target) == ("secure-channel", "ok", "card-under-test")


def test_flow_uses_the_legacy_format_when_tlv_is_refused(service):
    card = PickyCard(refuse_tlv=True)
    with LocalTransport(card) as transport:
        found = list_content(transport, 0x01, _opener(service))
    assert not found.tlv_format and found.load_file_subset is StatusSubset.LOAD_FILES_AND_MODULES
    assert found.isd[0].aid == bytes.fromhex(ISD)
    assert [m.hex().upper() for e in found.load_files for m in e.modules] == [
        "A000000151535041", "F000000001010101", "F000000002010101"]


def test_flow_wrong_key_closes_and_sends_nothing_more(service):
    from keyservice.identity import Caller, CallerKind
    from keyservice.inventory import KeyUsage
    from keyservice.policy import Purpose, Request
    from keyservice.views import NewKey

    req = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "lab")
    service.keys.import_test(req, NewKey("other", KeyAlgorithm.AES, 16, KeyUsage.ISD_KEYSET, "lab"), bytes(16))
    card = PickyCard()
    sent: list[bytes] = []
    transmit = card.transmit
    card.transmit = lambda apdu: sent.append(apdu) or transmit(apdu)  # type: ignore[method-assign]
    with LocalTransport(card) as transport, pytest.raises(CardCryptogramMismatch) as caught:
        list_content(transport, 0x01, _opener(service, "other"))
    assert caught.value.code == "cryptogram_mismatch"
    assert [apdu[1] for apdu in sent] == [0xA4, 0xCA, 0x50]  # SELECT, GET DATA 66, INITIALIZE UPDATE; no EXT. AUTH.
    refused = service.audit.records(1)[0]
    assert (refused.operation, refused.outcome, refused.detail) == ("secure-channel", "refused", "cryptogram_mismatch")


# ---- end to end through pcscd + vpcd + pyscard --------------------------------------------------------------


@pytest.fixture
def served_file(pcscd, default_card: Path, home: Path) -> Iterator[Path]:
    """`tsm cardsim serve` as a process (stopped by its PID) with the populated default card."""
    env = {k: v for k, v in os.environ.items() if k != "SOFTHSM2_CONF"}
    env["TSM_HOME"] = str(home)
    process = subprocess.Popen([TSM, "cardsim", "serve", "--card", str(default_card), "--vpcd", "127.0.0.1:35963"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_card()
        yield default_card
    finally:
        stop_process(process, signal.SIGINT, SERVE_STOP_TIMEOUT)  # Ctrl-C: the card is saved and disconnects
        if process.stderr is not None:
            process.stderr.close()
        wait_for_removal()


@pytest.mark.pcsc
def test_gp_list_through_pcscd(home, served_file):
    listing = ok(tsm(home, "gp", "list", "--reader", READER, "--key", "gp", "--level", "33"))
    assert f"ISD: {ISD} (SECURED)" in listing
    assert f"APP: {SSD.hex().upper()} (SELECTABLE)" in listing
    assert "Applet:  F000000002010101" in listing
    wrong = tsm(home, "gp", "list", "--reader", READER, "--key", "gp-des")
    assert wrong.returncode == 2 and len(wrong.stderr.strip().splitlines()) == 1
    assert "error[" in wrong.stderr and "Traceback" not in wrong.stderr
    assert _isd_auth_state(served_file)[0] == 0


@pytest.mark.pcsc
@pytest.mark.skipif(shutil.which("pcsc_scan") is None, reason="pcsc_scan not installed (pcsc-tools)")
def test_pcsc_scan_sees_the_reader(served_file):
    listing = subprocess.run(["pcsc_scan", "-r"], capture_output=True, text=True, timeout=30, check=True)
    assert READER in listing.stdout


@pytest.mark.pcsc
@pytest.mark.skipif(shutil.which("opensc-tool") is None, reason="opensc-tool not installed")
def test_opensc_tool_sees_the_card(served_file):
    listing = subprocess.run(["opensc-tool", "-l"], capture_output=True, text=True, timeout=30, check=True)
    line = next(line for line in listing.stdout.splitlines() if READER in line)
    assert "Yes" in line
