"""The virtual card: the OPEN's command dispatcher over the registry, secure channel and applets
(GPCS 2.3.1 chapter 6 "OPEN", 10.2 secure channel life, 11 command set)."""

from __future__ import annotations

from typing import Final

from cardsim.apdu import CommandApdu, Ins, Response
from cardsim.applets import applet_for
from cardsim.commands import HANDLERS, Handler, auth, select
from cardsim.identity import CardIdentity
from cardsim.lifecycle import CardLifeCycle
from cardsim.registry import Application, Registry
from cardsim.securechannel import SecureChannel, SecurityLevel
from cardsim.session import ForcedChallenge, PendingLoad
from cardsim.sw import SW, ApduError

#: Commands an ISO (inter-industry, CLA b8 = 0) class may carry; all others need the GP class (CLA 8x).
ISO_CLASS_ALLOWED: Final = frozenset({Ins.SELECT, Ins.GET_DATA})


class Card:
    """A GlobalPlatform card. `transmit` never raises for APDU content; it answers a status word."""

    def __init__(self, identity: CardIdentity, registry: Registry, confirmation_counter: int = 0) -> None:
        self.identity = identity
        self.registry = registry
        self.confirmation_counter = confirmation_counter
        self.selected: Application = registry.isd
        self.channel: SecureChannel | None = None
        self.pending_load: PendingLoad | None = None
        self.perso_target: bytes | None = None
        self.perso_next_block = 0
        self.get_status_rest: list[bytes] = []
        self._forced: ForcedChallenge | None = None

    def __repr__(self) -> str:
        return f"Card(profile={self.identity.profile!r}, life_cycle={self.life_cycle.name})"

    @property
    def life_cycle(self) -> CardLifeCycle:
        """The card life cycle is held by the ISD's registry entry (GPCS 2.3.1 5.1)."""
        return CardLifeCycle(self.registry.isd.life_cycle)

    @life_cycle.setter
    def life_cycle(self, value: CardLifeCycle) -> None:
        self.registry.isd.life_cycle = value

    def power_on(self) -> bytes:
        """Cold reset: drop volatile state, select the ISD, return the ATR."""
        self.selected = self.registry.isd
        self._reset_session()
        self._forced = None
        return self.identity.atr

    def force_next_challenge(self, card_challenge: bytes, sequence_counter: int | None = None) -> None:
        """TEST ONLY (to replay published traces): fix the next card challenge and sequence counter."""
        self._forced = ForcedChallenge(card_challenge, sequence_counter)

    def take_forced_challenge(self) -> ForcedChallenge | None:
        """The forced challenge, once."""
        forced, self._forced = self._forced, None
        return forced

    def _reset_session(self) -> None:
        self.channel = None
        self.pending_load = None
        self.perso_target = None
        self.perso_next_block = 0
        self.get_status_rest = []

    def transmit(self, capdu: bytes) -> bytes:
        """Process one C-APDU and return R-APDU data || SW1 SW2."""
        try:
            apdu = CommandApdu.parse(capdu)
            response = self._process(apdu)
        except ApduError as exc:
            response = Response(sw=exc.sw)
        return response.to_bytes()

    def select(self, entry: Application) -> None:
        """Make `entry` the selected application; ends any secure channel session (GPCS 10.2.3)."""
        self.selected = entry
        self._reset_session()

    def require_channel(self, level: SecurityLevel = SecurityLevel.AUTHENTICATED) -> SecureChannel:
        """The authenticated secure channel, with at least `level`; 6982 otherwise."""
        channel = self.channel
        if channel is None or not channel.authenticated or (channel.level & level) != level:
            raise ApduError(SW.SECURITY_STATUS, "secure channel required")
        return channel

    def _process(self, apdu: CommandApdu) -> Response:
        if apdu.channel:
            raise ApduError(SW.CHANNEL_NOT_SUPPORTED)
        if apdu.ins == Ins.SELECT and not apdu.proprietary:
            return select.handle(self, apdu)
        if not self.selected.is_sd:
            return applet_for(self.selected).process(apdu)
        handler = HANDLERS.get(apdu.ins)
        if handler is None:
            raise ApduError(SW.INS_NOT_SUPPORTED)
        if not apdu.proprietary and apdu.ins not in ISO_CLASS_ALLOWED:
            raise ApduError(SW.CLA_NOT_SUPPORTED)
        if self.life_cycle is CardLifeCycle.TERMINATED and apdu.ins != Ins.GET_DATA:
            raise ApduError(SW.FUNCTION_NOT_SUPPORTED, "card terminated")
        if apdu.ins == Ins.INITIALIZE_UPDATE:
            return auth.initialize_update(self, apdu)
        if apdu.ins == Ins.EXTERNAL_AUTHENTICATE:
            return auth.external_authenticate(self, apdu)
        channel = self.channel
        if channel is None or not channel.authenticated:
            self.channel = None
            if apdu.secure_messaging:
                raise ApduError(SW.SECURITY_STATUS, "no secure channel session")
            return _run(handler, self, apdu)
        try:
            plain = channel.unwrap(apdu)
        except ApduError:
            self._reset_session()
            raise
        return channel.wrap(_run(handler, self, plain))


def _run(handler: Handler, card: Card, apdu: CommandApdu) -> Response:
    try:
        return handler(card, apdu)
    except ApduError as exc:
        return Response(sw=exc.sw)
