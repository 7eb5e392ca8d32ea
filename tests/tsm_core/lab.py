"""A TSM lab for the tests of the TSM core (issue 9): a key service on a fresh test token with an SE vendor's
keys, the `Tsm` context the service functions take, simulated cards discovered into the registry, the demo apps
submitted and approved, and what the card itself says (GET STATUS, GET DATA 'E0', the bank applet's own
commands) to hold the registry against.

The demo CAP files come from `cardsim.capbuild`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from cardsim.capbuild import demo_cap
from cardsim.card import Card
from cardsim.state import new_card
from globalplatform import keyinfo
from globalplatform.apdu import ResponseApdu
from globalplatform.keys import KeyAlgorithm
from globalplatform.scp import SecurityLevel
from keyservice.channels import ChannelSpec, DivMethod
from keyservice.identity import Caller, CallerKind
from keyservice.inventory import KeyState, KeyUsage
from keyservice.policy import Purpose, Request
from keyservice.service import KeyService
from keyservice.views import NewKey
from storage.config import Settings
from storage.session import make_engine, session_factory
from tests.tsm_core.conftest import GP_TEST_KEY
from tsm_core.catalog import service as catalog
from tsm_core.context import Tsm
from tsm_core.flows.channel import ChannelSessionLike, IsdInfo
from tsm_core.flows.list_content import CardContent, list_content
from tsm_core.gp import commands
from tsm_core.gp.commands import DataObject
from tsm_core.jobs import engine
from tsm_core.jobs.views import JobView
from tsm_core.registry import discovery
from tsm_core.registry import service as registry
from tsm_core.transport.errors import CardRemoved
from tsm_core.transport.local import LocalTransport

OFFICER = Caller("alice", CallerKind.OFFICER)
VENDOR_ISD, VENDOR_SSD, ISSUER_KMC = "vendor-isd", "vendor-ssd", "issuer-kmc"
CARD_PROFILE = "wearable"
"""SCP03 i=70 with the GP test key, only the Security Domain package in ROM: every LOAD really happens."""
TRANSIT_INSTANCE, BANK_INSTANCE = "F00000000101010101", "F00000000201010101"
BANK_PAN, BANK_KEY = "4111111111111111", bytes(range(16))
BANK_NAME = b"JOHN SMITH"
BANK_PERSO = "0101=5F200A4A4F484E20534D4954485F2403301231 8101! 8000!"
"""The bank applet's personalization (cardsim/applets/bank.py): name and expiry stored, PAN and key per card."""
BANK_CARD_DGIS = {0x8101: bytes.fromhex("5A08" + BANK_PAN), 0x8000: BANK_KEY}


def cap(name: str) -> bytes:
    """A demo applet's CAP file (JAR form): `transit` or `bank`."""
    return demo_cap(name).jar()


@dataclass(frozen=True)
class Apdu:
    """One command as the card saw it, with the status word it answered."""

    cla: int
    ins: int
    p1: int
    p2: int
    sw: int

    @classmethod
    def of(cls, command: bytes, response: bytes) -> Apdu:
        return cls(command[0], command[1], command[2], command[3], int.from_bytes(response[-2:], "big"))


class Wire:
    """A card behind a wire that keeps every command the card processed and its status word."""

    def __init__(self, card: Card) -> None:
        self.card = card
        self.seen: list[Apdu] = []

    def power_on(self) -> bytes:
        return self.card.power_on()

    def transmit(self, apdu: bytes) -> bytes:
        response = self.card.transmit(apdu)
        self.seen.append(Apdu.of(apdu, response))
        return response


class Unplugged(Wire):
    """A card that leaves the field at the k-th command: before it reaches the card, or after (the answer is
    lost); nothing reaches it afterwards."""

    def __init__(self, card, k: int, after: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(card)
        self.k, self.after, self.sent = k, after, 0

    def transmit(self, apdu: bytes) -> bytes:
        self.sent += 1
        if self.sent > self.k or (self.sent == self.k and not self.after):
            raise CardRemoved("the card left the field")
        answer = super().transmit(apdu)
        if self.sent == self.k:
            raise CardRemoved("the card left the field")
        return answer


KEY_MANAGEMENT = Request(OFFICER, Purpose.KEY_MANAGEMENT, "lab")


@dataclass
class Lab:
    """One key service and database with the vendor's keys, and the service functions' context."""

    tsm: Tsm
    settings: Settings

    @property
    def keys(self) -> KeyService:
        return self.tsm.keys

    def import_key(self, label: str, usage: KeyUsage, value: bytes = GP_TEST_KEY) -> None:
        self.keys.keys.import_test(KEY_MANAGEMENT, NewKey(label, KeyAlgorithm.AES, 16, usage, "lab"), value)

    def issuer_kmc(self) -> str:
        """The issuer's active AES KMC (owner `issuer`), generated in the HSM."""
        self.keys.keys.generate(KEY_MANAGEMENT, NewKey(ISSUER_KMC, KeyAlgorithm.AES, 16, KeyUsage.KMC, "issuer"))
        self.keys.keys.change_state(KEY_MANAGEMENT, ISSUER_KMC, KeyState.ACTIVE)
        return ISSUER_KMC

    # ---- cards ---------------------------------------------------------------------------------------------

    def discover(self, card: Card | Wire, *, key: str = VENDOR_ISD, profile: str = "") -> str:
        """`tsm se discover --key vendor-isd --initial-ssd-key vendor-ssd` in process; the SE id."""
        given = discovery.Discovery((key,), initial_ssd_key=VENDOR_SSD, profile=profile)
        with LocalTransport(card) as transport:
            se_id, _ = discovery.discover_se(self.tsm, transport, given, "card-under-test")
        return se_id

    def new_se(self, profile: str = CARD_PROFILE) -> tuple[Card, str]:
        """A factory-fresh card, discovered."""
        card = new_card(profile)
        return card, self.discover(card)

    def run(self, job_id: str, card: Card | Wire, perso: dict[int, bytes] | None = None) -> JobView:
        """`tsm job run JOB` against an in-process card."""
        with LocalTransport(card) as transport:
            return engine.run(self.tsm, job_id, transport, perso=perso)

    # ---- the catalog -----------------------------------------------------------------------------------------

    def add_sp(self, name: str, mode: str = "cm") -> None:
        if name not in {t.name for t in registry.list_tenants(self.tsm)}:
            registry.add_tenant(self.tsm, name, "sp", mode)

    def app(self, sp: str, which: str, *, approve: bool = True, **fields: Any) -> str:
        """An app of SP `sp` on a demo CAP file (`transit` or `bank`, with its personalization), approved."""
        defaults: dict[str, Any] = ({"instance_aid": BANK_INSTANCE, "perso": BANK_PERSO} if which == "bank"
                                    else {"instance_aid": TRANSIT_INSTANCE})
        app_id = catalog.submit(self.tsm, catalog.Submission(sp, cap(which), **(defaults | fields)))
        if approve:
            catalog.review(self.tsm, app_id, approve=True)
        return app_id

    # ---- what the card says --------------------------------------------------------------------------------

    def card_content(self, se_id: str, card: Card | Wire) -> CardContent:
        """The card's Registry by GET STATUS over its ISD, opened with the key set the registry names (what
        `tsm se show --card` reads)."""
        keys = registry.show(self.tsm, se_id).isd.active_key_set
        assert keys is not None
        method = None if keys.diversification in ("", "none") else DivMethod(keys.diversification)
        spec = ChannelSpec(keys.keys, method, SecurityLevel.C_MAC, keys.kvn)
        request = self.tsm.request(Purpose.SE_MANAGEMENT, se_id)

        def open_channel(isd: IsdInfo) -> ChannelSessionLike:
            return self.keys.channels.open(request, replace(spec, aid=isd.aid, i=isd.i))

        with LocalTransport(card) as transport:
            return list_content(transport, SecurityLevel.C_MAC, open_channel)


def card_entries(content: CardContent) -> set[tuple[str, str, int, str]]:
    """(AID, kind, life cycle, associated SD) of every Registry entry GET STATUS showed."""
    def row(kind: str, entry: Any) -> tuple[str, str, int, str]:
        return entry.aid.hex().upper(), kind, entry.life_cycle, (entry.associated_sd_aid or b"").hex().upper()

    return ({row("isd", e) for e in content.isd}
            | {row("sd" if e.is_security_domain else "app", e) for e in content.applications}
            | {row("elf", e) for e in content.load_files})


def registry_entries(tsm: Tsm, se_id: str) -> set[tuple[str, str, int, str]]:
    """The same rows as the registry holds them."""
    return {(e.aid, e.kind, e.life_cycle, e.associated_sd) for e in registry.show(tsm, se_id).content}


def assert_registry_is_card(lab: Lab, se_id: str, card: Card | Wire) -> set[tuple[str, str, int, str]]:
    """The registry claims exactly what an independent GET STATUS of the card shows; returns it."""
    on_card = card_entries(lab.card_content(se_id, card))
    assert registry_entries(lab.tsm, se_id) == on_card
    return on_card


def send(card: Card | Wire, *apdus: str) -> list[ResponseApdu]:
    """Plain commands (hex) to a powered-on card, their responses."""
    card.power_on()
    return [ResponseApdu.from_bytes(card.transmit(bytes.fromhex(apdu))) for apdu in apdus]


def key_versions(card: Card | Wire, sd_aid: str) -> set[int]:
    """The key versions SD `sd_aid` lists in its key information (SELECT, GET DATA 'E0' in the clear)."""
    card.power_on()
    selected = ResponseApdu.from_bytes(card.transmit(commands.select(bytes.fromhex(sd_aid)).to_bytes()))
    assert selected.sw == 0x9000, f"SELECT {sd_aid}: {selected.sw:04X}"
    answer = ResponseApdu.from_bytes(card.transmit(commands.get_data(DataObject.KEY_INFORMATION).to_bytes()))
    assert answer.sw == 0x9000
    return {k.kvn for k in keyinfo.parse_key_information(answer.data)}


def make_lab(settings: Settings, test_token: bool) -> Lab:
    """A lab on an initialised key service (tests.conftest.make_service) with the vendor's ISD and SSD keys."""
    from tests.conftest import make_service

    service = make_service(settings, test_token)
    tsm = Tsm(session_factory(make_engine(settings.database_url, settings.database_busy_timeout)), service, OFFICER)
    lab = Lab(tsm, settings)
    lab.import_key(VENDOR_ISD, KeyUsage.ISD_KEYSET)
    lab.import_key(VENDOR_SSD, KeyUsage.SSD_KEYSET)
    return lab
