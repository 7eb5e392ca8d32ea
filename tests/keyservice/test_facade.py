"""The sealed barrier (issue 7): nothing before the token is open, the HSM profile's strategy table changes
behaviour, and the token object of every key has the length its record says."""

from __future__ import annotations

from pathlib import Path

import pytest

from globalplatform.keys import KeyAlgorithm
from keyservice.channels import ChannelSpec
from keyservice.errors import HsmMechanismUnsupported, ServiceSealed
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.runtime import close_all
from keyservice.service import KeyService
from keyservice.views import NewKey
from softhsm.bootstrap import load_pins
from storage.config import with_overrides
from storage.session import make_engine, session_factory
from tests.conftest import MODULE, core_of, make_service

OFFICER = Request(Caller("alice", CallerKind.OFFICER), Purpose.KEY_MANAGEMENT, "tests")
TSM = Request(Caller("tsm", CallerKind.SERVICE), Purpose.SE_MANAGEMENT, "se-1")
PROFILES = Path(__file__).parents[2] / "hsm_profiles" / "profiles"


def test_a_sealed_service_refuses_everything_until_unsealed(settings_factory, db_url):
    settings, test_token = settings_factory(db_url)
    make_service(settings, test_token)
    close_all()
    sealed = KeyService(MODULE, settings.token_label, session_factory(make_engine(settings.database_url)))
    assert sealed.sealed
    calls = [lambda: sealed.keys.list_keys(), lambda: sealed.keys.show("x"), lambda: sealed.keys.check(),
             lambda: sealed.keys.generate(OFFICER, NewKey("k", KeyAlgorithm.AES, 16, KeyUsage.KEK, "x")),
             lambda: sealed.channels.open(TSM, ChannelSpec(("k",))), lambda: sealed.audit.verify(),
             lambda: sealed.audit.records(), lambda: sealed.token_info(), lambda: sealed.run_selftest(),
             lambda: sealed.vendor.export_wrapped(OFFICER, "k", "kek", False)]
    for call in calls:
        with pytest.raises(ServiceSealed):
            call()
    sealed.unseal(load_pins(settings.pin_file).user_pin)
    assert [k.label for k in sealed.keys.list_keys()] == ["tsm.approval-key", "tsm.audit-key", "tsm.vault-key"]
    sealed.seal()
    with pytest.raises(ServiceSealed):
        sealed.keys.list_keys()
    sealed.close()


@pytest.mark.parametrize(("algorithm", "length"), [(KeyAlgorithm.DES3, 16), (KeyAlgorithm.DES3, 24),
                                                   (KeyAlgorithm.AES, 16), (KeyAlgorithm.AES, 24),
                                                   (KeyAlgorithm.AES, 32), (KeyAlgorithm.HMAC, 32),
                                                   (KeyAlgorithm.HMAC, 64)])
def test_the_token_object_has_the_length_its_record_says(keyservice, algorithm, length):
    """`keys generate --type des3 --length 16` once made a 24-byte key while the record said 16."""
    generated = keyservice.keys.generate(OFFICER, NewKey("gen", algorithm, length, KeyUsage.KEK, "issuer"))
    imported = keyservice.keys.import_test(OFFICER, NewKey("imp", algorithm, length, KeyUsage.KEK, "issuer"),
                                           bytes(range(1, length + 1)))
    hsm = core_of(keyservice).hsm
    for view in (generated, imported):
        assert view.length == length
        assert hsm.key_length(hsm.handle(view.label)) == length
    assert keyservice.keys.check().consistent


def _profile(tmp_path: Path, **strategies: str) -> str:
    text = (PROFILES / "softhsm2.toml").read_text()
    for step, strategy in strategies.items():
        lines = [f'{step} = "{strategy}"' if line.startswith(f"{step} =") else line for line in text.splitlines()]
        text = "\n".join(lines) + "\n"
    path = tmp_path / "custom.toml"
    path.write_text(text)
    return str(path)


def test_a_profile_that_refuses_scp02_put_key_changes_what_the_service_does(settings_factory, db_url, tmp_path):
    """With SoftHSM2's own profile the simulated card is rotated onto new keys over SCP02 (test_channels.py);
    with a profile whose table says `unsupported` for that step, the same call is refused."""
    from cardsim.state import new_card
    from keyservice.gp.diversify import DivMethod
    from tests.keyservice.test_channels import _open

    settings, test_token = settings_factory(db_url)
    lab = make_service(with_overrides(settings, hsm_profile=_profile(tmp_path, put_key_scp02="unsupported")),
                       test_token)
    key = bytes.fromhex("404142434445464748494A4B4C4D4E4F")
    for label in ("kmc-des", "kmc-new"):
        lab.keys.import_test(OFFICER, NewKey(label, KeyAlgorithm.DES3, 16, KeyUsage.KMC, "lab"), key)
    card = new_card("scp02-emv")
    card.power_on()
    rotate = Request(TSM.caller, Purpose.KEY_ROTATION, "se-1")
    with lab.channels.open(rotate, ChannelSpec(("kmc-des",), DivMethod.EMV, i=0x15)) as session:
        _open(card, session)
        with pytest.raises(HsmMechanismUnsupported, match="put_key_scp02"):
            session.put_key(ChannelSpec(("kmc-new",), diversification=DivMethod.EMV), old_kvn=0, new_kvn=0x30)
    assert lab.audit.records(1)[0].outcome == "error"
