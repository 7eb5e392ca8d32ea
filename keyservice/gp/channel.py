"""The host side of one GP secure channel (SCP02: GPCS 2.3.1 Annex E; SCP03: Amd D v1.2 §6, §7).

One object per session holds the chaining state (SCP02 ICV, SCP03 MAC chaining value and encryption
counter) and the handles of its session objects; key values never appear in it. Sequence:

    ch = SecureChannel(hsm, Scp.SCP03, static=keyset)           # or diversifier=Diversifier(kmc, KDF3, 16)
    apdu = ch.initialize_update(kvn, host_challenge)             # CLA 80 INS 50 P1=KVN P2=00 Lc=08 data [Le]
    ch.verify_card_response(response_without_sw)                 # CryptogramMismatch: the channel is dead
    apdu = ch.external_authenticate()                            # always carries a C-MAC
    wrapped = ch.wrap(plain_capdu); plain = ch.unwrap(rapdu)     # MacMismatch on a bad R-MAC
    ch.close()                                                   # destroys every session object
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

from globalplatform import initupdate
from globalplatform.apdu import SHORT_NC_MAX, Cla, CommandApdu, Ins, ResponseApdu
from globalplatform.initupdate import HOST_CHALLENGE_LENGTH, InitUpdateResponse
from globalplatform.keys import KeyAlgorithm, KeyPurpose
from globalplatform.scp import SCP02_DEFAULT_I, Scp, Scp02Option, Scp03Option, SecurityLevel, check_level
from globalplatform.sw import is_protected_response
from keyservice.errors import (
    CryptogramMismatch,
    InvalidInput,
    KeyServiceError,
    MacMismatch,
    UnwrapFailed,
    gp_input,
)
from keyservice.gp import hsmops
from keyservice.gp.diversify import Diversifier, KeySet, diversify_key
from keyservice.gp.scp02 import Scp02Session
from keyservice.gp.scp02 import card_cryptogram as scp02_card_cryptogram
from keyservice.gp.scp02 import host_cryptogram as scp02_host_cryptogram
from keyservice.gp.scp03 import Scp03Session
from keyservice.gp.scp03 import card_challenge as scp03_card_challenge
from keyservice.hsm import Hsm

__all__ = ["HOST_CHALLENGE_LENGTH", "ChannelState", "Scp", "SecureChannel", "SecurityLevel", "State"]


class State(Enum):
    """Life cycle of a channel object."""

    NEW = auto()
    INITIALIZING = auto()
    VERIFIED = auto()
    OPEN = auto()
    FAILED = auto()
    CLOSED = auto()


@dataclass(frozen=True)
class ChannelState:
    """What an open channel needs to go on in another process: only values that crossed the wire or follow from
    them (challenges, counters, KDD, MAC chaining values), never a key. With the static keys, `SecureChannel.resume`
    derives the same session keys again in the HSM (SCP03 Amd D §6.2.1 from the challenges; SCP02 §E.4.1 from the
    sequence counter)."""

    kvn: int
    i: int | None
    host_challenge: bytes
    card_challenge: bytes
    sequence_counter: bytes
    kdd: bytes
    chaining: bytes
    """SCP03: the MAC chaining value (§6.2.4); SCP02: the C-MAC ICV (§E.4.4)."""
    r_chaining: bytes
    """SCP02: the R-MAC ICV (§E.4.5); SCP03: empty (the R-MAC uses the C-MAC chaining value)."""
    counter: int
    """SCP03: the encryption counter (§6.2.6); SCP02: 0."""
    rmac_command: bytes
    """SCP02: the last command as the R-MAC covers it (§E.4.5); SCP03: empty."""


class SecureChannel:
    """Host side of a GP secure channel whose keys stay in the HSM (see module docstring)."""

    def __init__(self, hsm: Hsm, scp: Scp, *, static: KeySet | None = None, diversifier: Diversifier | None = None,
                 security_level: int = SecurityLevel.C_MAC, i: int | None = None, aid: bytes | None = None) -> None:
        if (static is None) == (diversifier is None):
            raise InvalidInput("give either a static key set or a diversifier")
        expected = KeyAlgorithm.DES3 if scp is Scp.SCP02 else KeyAlgorithm.AES
        algorithm = static.algorithm if static is not None else diversifier.algorithm  # type: ignore[union-attr]
        if algorithm is not expected:
            raise InvalidInput(f"SCP{scp.value} needs {expected.value} keys, not {algorithm.value}")
        with gp_input():
            level = check_level(scp, i if scp is Scp.SCP03 else None, security_level)
        self._hsm = hsm
        self.scp = scp
        self.security_level = level
        self.i = SCP02_DEFAULT_I if i is None and scp is Scp.SCP02 else i
        self._static = static
        self._diversifier = diversifier
        self._aid = aid  # the SD's AID: with it, a pseudo-random SCP03 card challenge is checked too
        self._card_keys: KeySet | None = None
        self._s02: Scp02Session | None = None
        self._s03: Scp03Session | None = None
        self._host_challenge = b""
        self._card_challenge = b""
        self._rmac_command = b""
        self.kdd = b""
        self.kvn = 0
        self.sequence_counter = b""
        self.state = State.NEW

    def __repr__(self) -> str:
        return f"SecureChannel(SCP{self.scp.value}, level={int(self.security_level):02X}, {self.state.name})"

    def __enter__(self) -> SecureChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- authentication ---------------------------------------------------------------------------------

    def initialize_update(self, kvn: int, host_challenge: bytes, *, with_le: bool = True) -> bytes:
        """The INITIALIZE UPDATE command (GPCS 2.3.1 §11.14.2; Amd D §7.1.1)."""
        self._require(State.NEW)
        with gp_input():
            command = initupdate.command(kvn, host_challenge, with_le=with_le)
        self._host_challenge = host_challenge
        self.state = State.INITIALIZING
        return command

    def verify_card_response(self, response: bytes) -> None:
        """Check the card cryptogram of the INITIALIZE UPDATE response (without SW).

        On a mismatch the session objects are destroyed, the channel is dead and CryptogramMismatch raised.
        """
        self._require(State.INITIALIZING)
        try:
            with gp_input():
                parsed = initupdate.parse(response)
            self._key_info(parsed)
            ok = self._verify_scp02(parsed) if self.scp is Scp.SCP02 else self._verify_scp03(parsed)
        except KeyServiceError:
            self._fail()
            raise
        if not ok:
            self._fail()
            raise CryptogramMismatch("the card cryptogram does not verify")
        self.state = State.VERIFIED

    def _keys_for(self, kdd: bytes) -> KeySet:
        if self._static is not None:
            return self._static
        assert self._diversifier is not None
        self._card_keys = self._diversifier.keyset(self._hsm, kdd, with_dek=False)
        return self._card_keys

    def _key_info(self, response: InitUpdateResponse) -> None:
        self.kdd, self.kvn = response.kdd, response.kvn
        if response.scp != self.scp.number:
            raise InvalidInput(f"the card answered for SCP{response.scp:02X}, not SCP{self.scp.value}")
        if response.i is not None:
            self.i = response.i
            with gp_input():  # the card's "i" must allow the level asked for, before anything is sent
                check_level(self.scp, self.i, self.security_level)

    def _verify_scp02(self, response: InitUpdateResponse) -> bool:
        counter, challenge = response.sequence_counter, response.card_challenge
        self.sequence_counter, self._card_challenge = counter, challenge
        self._s02 = Scp02Session.open(self._hsm, self._keys_for(self.kdd), counter, Scp02Option(self.i or 0))
        expect = scp02_card_cryptogram(self._hsm, self._s02.s_enc, self._host_challenge, counter, challenge)
        return hsmops.same(expect, response.card_cryptogram)

    def _verify_scp03(self, response: InitUpdateResponse) -> bool:
        counter, challenge, half = response.sequence_counter, response.card_challenge, len(response.card_challenge)
        self.sequence_counter = counter
        host = self._host_challenge if half == HOST_CHALLENGE_LENGTH else self._host_challenge * 2
        keys = self._keys_for(self.kdd)
        if counter and self._aid is not None and (self.i or 0) & Scp03Option.PSEUDO_RANDOM_CHALLENGE and \
                not hsmops.same(scp03_card_challenge(self._hsm, keys.enc, counter, self._aid, half), challenge):
            return False  # Amd D §6.2.2.1: not the challenge this card must derive from its counter and AID
        self._card_challenge = challenge
        self._s03 = Scp03Session.open(self._hsm, keys, host, challenge)
        return hsmops.same(self._s03.card_cryptogram(), response.card_cryptogram)

    def external_authenticate(self) -> bytes:
        """EXTERNAL AUTHENTICATE with the host cryptogram and a C-MAC (GPCS §E.5.2, Amd D §7.1.2)."""
        self._require(State.VERIFIED)
        level = int(self.security_level)
        cla = Cla.GP | Cla.SECURE_MESSAGING
        if self._s02 is not None:
            s02 = self._s02
            cryptogram = scp02_host_cryptogram(self._hsm, s02.s_enc, self._host_challenge,
                                               self.sequence_counter, self._card_challenge)
            mac = s02.c_mac(self._mac_input02(CommandApdu(Cla.GP, Ins.EXTERNAL_AUTHENTICATE, level, 0,
                                                          cryptogram)), reset=True)
        else:
            assert self._s03 is not None
            cryptogram = self._s03.host_cryptogram()
            lc = len(cryptogram) + self._s03.s_mode
            mac = self._s03.c_mac(bytes([cla, Ins.EXTERNAL_AUTHENTICATE, level, 0, lc]) + cryptogram)
        self.state = State.OPEN
        return bytes([cla, Ins.EXTERNAL_AUTHENTICATE, level, 0, len(cryptogram) + len(mac)]) + cryptogram + mac

    # ---- across processes -------------------------------------------------------------------------------

    def snapshot(self) -> ChannelState:
        """The open channel's state as `resume` takes it (no key: see ChannelState)."""
        self._require(State.OPEN)
        if self._s03 is not None:
            s03 = self._s03
            return ChannelState(self.kvn, self.i, self._host_challenge, self._card_challenge, self.sequence_counter,
                                self.kdd, s03.chaining, b"", s03.counter, b"")
        assert self._s02 is not None
        return ChannelState(self.kvn, self.i, self._host_challenge, self._card_challenge, self.sequence_counter,
                            self.kdd, self._s02.icv, self._s02.r_icv, 0, self._rmac_command)

    def resume(self, state: ChannelState) -> None:
        """Open this new channel where `snapshot` left one: the session keys derived again in the HSM, the
        chaining values and counters taken over. The card must have been authenticated by the channel `state`
        came from."""
        self._require(State.NEW)
        self.kdd, self.kvn, self.i = state.kdd, state.kvn, state.i
        with gp_input():
            check_level(self.scp, self.i if self.scp is Scp.SCP03 else None, self.security_level)
        self._host_challenge, self._card_challenge = state.host_challenge, state.card_challenge
        self.sequence_counter, self._rmac_command = state.sequence_counter, state.rmac_command
        try:
            keys = self._keys_for(self.kdd)
            if self.scp is Scp.SCP02:
                self._s02 = Scp02Session.open(self._hsm, keys, state.sequence_counter, Scp02Option(self.i or 0))
                self._s02.icv, self._s02.r_icv = state.chaining, state.r_chaining
            else:
                half = len(state.card_challenge)
                host = state.host_challenge if half == HOST_CHALLENGE_LENGTH else state.host_challenge * 2
                self._s03 = Scp03Session.open(self._hsm, keys, host, state.card_challenge)
                self._s03.chaining, self._s03.counter = state.chaining, state.counter
        except KeyServiceError:
            self._fail()
            raise
        self.state = State.OPEN

    # ---- wrapping ---------------------------------------------------------------------------------------

    def wrap(self, capdu: bytes) -> bytes:
        """Protect a command according to the security level (C-MAC, C-ENC / C-DEC)."""
        self._require(State.OPEN)
        with gp_input():
            cmd = CommandApdu.from_bytes(capdu)
        if cmd.extended:
            raise InvalidInput("extended-length APDUs are not supported by the secure channel")
        if self._s03 is not None:
            return self._wrap03(cmd)
        return self._wrap02(cmd)

    def _mac_input02(self, cmd: CommandApdu) -> bytes:
        if Scp02Option(self.i or 0) & Scp02Option.CMAC_ON_UNMODIFIED_APDU:
            return bytes([cmd.cla, cmd.ins, cmd.p1, cmd.p2, len(cmd.data)]) + cmd.data
        cla = cmd.cla | Cla.SECURE_MESSAGING
        return bytes([cla, cmd.ins, cmd.p1, cmd.p2, len(cmd.data) + 8]) + cmd.data

    def _wrap02(self, cmd: CommandApdu) -> bytes:
        assert self._s02 is not None
        level = self.security_level
        if level & SecurityLevel.R_MAC:
            cla = cmd.cla & ~(Cla.SECURE_MESSAGING | Cla.CHANNEL_MASK)
            self._rmac_command = bytes([cla, cmd.ins, cmd.p1, cmd.p2, len(cmd.data)]) + cmd.data
        if not level & SecurityLevel.C_MAC:
            return cmd.to_bytes()
        mac = self._s02.c_mac(self._mac_input02(cmd))
        data = self._s02.encrypt_data(cmd.data) if level & SecurityLevel.C_DECRYPTION and cmd.data else cmd.data
        return _protected(cmd, data + mac)

    def _wrap03(self, cmd: CommandApdu) -> bytes:
        s03 = self._s03
        assert s03 is not None
        s03.next_counter()
        level = self.security_level
        if not level & SecurityLevel.C_MAC:
            return cmd.to_bytes()
        data = s03.encrypt_data(cmd.data) if level & SecurityLevel.C_DECRYPTION and cmd.data else cmd.data
        mac_cla = (cmd.cla & ~(Cla.CHANNEL_MASK | 0x08)) | Cla.SECURE_MESSAGING
        mac = s03.c_mac(bytes([mac_cla, cmd.ins, cmd.p1, cmd.p2, len(data) + s03.s_mode]) + data)
        return _protected(cmd, data + mac)

    def unwrap(self, rapdu: bytes) -> bytes:
        """Verify the R-MAC (MacMismatch) and decrypt R-ENC data; returns data || SW."""
        self._require(State.OPEN)
        with gp_input():
            response = ResponseApdu.from_bytes(rapdu)
        data, sw = response.data, rapdu[-2:]
        if not self.security_level & SecurityLevel.R_MAC:
            return rapdu
        if self._s03 is not None:
            return self._unwrap03(data, sw)
        return self._unwrap02(data, sw)

    def _unwrap03(self, data: bytes, sw: bytes) -> bytes:
        s03 = self._s03
        assert s03 is not None
        if not is_protected_response(int.from_bytes(sw, "big")):
            return sw
        if len(data) < s03.s_mode:
            raise MacMismatch("the response carries no R-MAC")
        body, rmac = data[: -s03.s_mode], data[-s03.s_mode:]
        if not hsmops.same(s03.r_mac(body + sw), rmac):
            raise MacMismatch("the R-MAC does not verify")
        if self.security_level & SecurityLevel.R_ENCRYPTION and body:
            plain = s03.decrypt_response(body)
            if plain is None:
                raise UnwrapFailed("the encrypted response data is malformed")
            body = plain
        return body + sw

    def _unwrap02(self, data: bytes, sw: bytes) -> bytes:
        s02 = self._s02
        assert s02 is not None
        if len(data) < 8:
            raise MacMismatch("the response carries no R-MAC")
        body, rmac = data[:-8], data[-8:]
        if not hsmops.same(s02.r_mac(self._rmac_command + bytes([len(body)]) + body + sw), rmac):
            raise MacMismatch("the R-MAC does not verify")
        return body + sw

    # ---- key access for PUT KEY / STORE DATA -----------------------------------------------------------

    def session_dek(self) -> int:
        """SCP02: the session DEK handle (GPCS §E.4.1); SCP03: the static DEK (Amd D §7.2.2)."""
        self._require(State.OPEN)
        keys = self._card_keys or self._static
        if keys is not None and keys.dek is None and self._card_keys is not None and self._diversifier:
            dv = self._diversifier  # the card DEK is diversified on first use only
            keys.dek = diversify_key(self._hsm, dv.master, dv.method, self.kdd, KeyPurpose.DEK, dv.master_length)
            keys.owned.append(keys.dek)
        if keys is None or keys.dek is None:
            raise InvalidInput("the key set has no DEK")
        if self._s02 is not None:
            return self._s02.dek()
        return keys.dek

    @property
    def key_length(self) -> int:
        keys = self._card_keys or self._static
        return 0 if keys is None else keys.length

    # ---- life cycle -------------------------------------------------------------------------------------

    def _require(self, state: State) -> None:
        if self.state is not state:
            raise InvalidInput(f"secure channel is {self.state.name}, the call needs {state.name}")

    def _fail(self) -> None:
        self.close()
        self.state = State.FAILED

    def close(self) -> None:
        """Destroy the session keys and any diversified card keys (idempotent)."""
        for session in (self._s02, self._s03):
            if session is not None:
                session.close()
        self._s02 = self._s03 = None
        if self._card_keys is not None:
            self._card_keys.destroy(self._hsm)
            self._card_keys = None
        if self.state is not State.FAILED:
            self.state = State.CLOSED


def _protected(cmd: CommandApdu, data: bytes) -> bytes:
    """The command with the secure-messaging CLA bit and its protected data (short APDUs only)."""
    if len(data) > SHORT_NC_MAX:
        raise InvalidInput(f"protected command data of {len(data)} bytes does not fit a short APDU")
    return CommandApdu(cmd.cla | Cla.SECURE_MESSAGING, cmd.ins, cmd.p1, cmd.p2, data, cmd.le).to_bytes()
