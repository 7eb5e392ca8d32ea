"""Typed schemas of the secure-messaging KAT types: `secure_channel`, `put_key` (both forms), `sm_wrap`.

Parsed strictly like the other types (keyservice/kat_schema.py): a command that would not fit a short APDU
once wrapped, an unknown security level or a handshake without keys is a VectorError naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from globalplatform.apdu import SHORT_NC_MAX, CommandApdu
from globalplatform.errors import GpError
from globalplatform.initupdate import HOST_CHALLENGE_LENGTH, KDD_LENGTH
from globalplatform.keys import VALID_LENGTHS, GpKeyType, KeyAlgorithm
from globalplatform.scp import Scp, SecurityLevel
from keyservice.gp import scp02, scp03
from keyservice.gp.diversify import ALGORITHM, DivMethod
from keyservice.kat_fields import Fields, VectorError
from keyservice.kat_schema import BLOCK, SCP_ALGORITHM, KeyValues, key, key_set, key_values

SECURITY_LEVELS: Final = (0x00, 0x01, 0x03, 0x11, 0x13, 0x33)  # GPCS Table 11-62 / E-11, Amd D Table 7-4
IU_COMMAND_LENGTHS: Final = (13, 14)  # 80 50 P1 00 08 + host challenge (+ Le)
IU_P1: Final = 2
IU_RESPONSE_LENGTHS: Final = {Scp.SCP02: (28,), Scp.SCP03: (29, 32, 45, 48)}  # as SecureChannel accepts them
APDU_MIN: Final = 4  # CLA INS P1 P2
RAPDU_LENGTHS: Final = range(2, 259)  # SW1 SW2 after up to 256 bytes (ISO/IEC 7816-4 short Le)
C_MAC_LENGTH: Final = 8
KVN_RANGE: Final = range(0x80)  # GPCS 2.3.1 §11.8.2.2: 00 (new key set) .. 7F
KEY_ID_RANGE: Final = range(1, 0x80)


@dataclass(frozen=True)
class MasterKey:
    """`diversify`: the card's static keys are diversified from this master key by `method`."""

    method: DivMethod
    master: bytes


@dataclass(frozen=True)
class DiversifiedKeys:
    """`new_keys_diversify`: the new keys are the keys of `master` for the card with this KDD."""

    master: MasterKey
    kdd: bytes


def _master_key(obj: Fields, scp: Scp) -> MasterKey:
    method = obj.choice("method", DivMethod)
    if ALGORITHM[method] is not SCP_ALGORITHM[scp]:
        raise VectorError(f"is {method.value}, which does not make SCP{scp.value} keys", obj.path("method"))
    return MasterKey(method, key(obj, "master", ALGORITHM[method]))


def master_key(f: Fields, name: str, scp: Scp) -> MasterKey:
    obj = f.obj(name, "a diversification ('method', 'master')")
    master = _master_key(obj, scp)
    obj.close()
    return master


def diversified_keys(f: Fields, name: str, scp: Scp) -> DiversifiedKeys:
    obj = f.obj(name, "a diversification ('method', 'master', 'kdd')")
    keys = DiversifiedKeys(_master_key(obj, scp), obj.hex("kdd", (KDD_LENGTH,)))
    obj.close()
    return keys


@dataclass(frozen=True)
class Handshake:
    """INITIALIZE UPDATE and EXTERNAL AUTHENTICATE of `secure_channel` and `put_key`."""

    scp: Scp
    i: int | None
    keys: KeyValues | MasterKey  # `static` or `diversify`
    security_level: int
    host_challenge: bytes
    iu_command: bytes
    iu_response: bytes
    external_authenticate: bytes

    @property
    def kvn(self) -> int:
        """P1 of INITIALIZE UPDATE: the key version number (00 = first available)."""
        return self.iu_command[IU_P1]

    @property
    def with_le(self) -> bool:
        return len(self.iu_command) == IU_COMMAND_LENGTHS[-1]


def handshake(f: Fields, scp: Scp) -> Handshake:
    if f.has("static") == f.has("diversify"):
        raise VectorError("is missing (give either 'static' or 'diversify')" if not f.has("static")
                          else "and 'diversify' are both given (give one)", f.path("static"))
    keys = key_set(f, "static", SCP_ALGORITHM[scp]) if f.has("static") else master_key(f, "diversify", scp)
    iu = f.obj("initialize_update", "initialize_update ('command', 'response')")
    command, response = iu.hex("command", IU_COMMAND_LENGTHS), iu.hex("response", IU_RESPONSE_LENGTHS[scp])
    iu.close()
    return Handshake(scp, f.byte("i") if f.has("i") else None, keys,
                     f.byte("security_level", SECURITY_LEVELS), f.hex("host_challenge", (HOST_CHALLENGE_LENGTH,)),
                     command, response, f.hex("external_authenticate", minimum=APDU_MIN))


@dataclass(frozen=True)
class CardResponse:
    """What the card answered (protected data, R-MAC, SW) and its expected unwrapped form (data, SW)."""

    raw: bytes
    plain: bytes


@dataclass(frozen=True)
class Command:
    """A command to wrap, and optionally the card's response to it."""

    plain: bytes
    wrapped: bytes
    response: CardResponse | None = None


def protected_length(data: int, scp: Scp, level: int) -> int:
    """Length of a command's data once wrapped: C-DEC pads to the block (GPCS §E.4.6, Amd D §6.2.6), C-MAC adds 8."""
    if level & SecurityLevel.C_DECRYPTION and data:
        data = (data // BLOCK[scp] + 1) * BLOCK[scp]
    return data + C_MAC_LENGTH if level & SecurityLevel.C_MAC else data


def command_apdu(c: Fields, scp: Scp, level: int) -> bytes:
    """`plain`: a short command APDU whose wrapped form is a short APDU too (GPCS 2.3.1 §E.4.4, Amd D §6.2.4)."""
    plain = c.hex("plain")
    try:
        command = CommandApdu.from_bytes(plain)
    except GpError as exc:
        raise VectorError(f"is not a command APDU ({exc})", c.path("plain")) from None
    if command.extended:
        raise VectorError("is not a short command APDU", c.path("plain"))
    size = len(command.data)
    if protected_length(size, scp, level) > SHORT_NC_MAX:
        raise VectorError(f"carries {size} data bytes: wrapped, they would not fit a short APDU", c.path("plain"))
    return plain


def commands(f: Fields, scp: Scp, level: int, *, with_responses: bool) -> tuple[Command, ...]:
    out = []
    for c in f.objects("commands", "a command"):
        plain, wrapped = command_apdu(c, scp, level), c.hex("wrapped", minimum=APDU_MIN)
        if with_responses and (c.has("response") or c.has("response_plain")):
            out.append(Command(plain, wrapped, CardResponse(c.hex("response", RAPDU_LENGTHS),
                                                            c.hex("response_plain", RAPDU_LENGTHS))))
        else:
            out.append(Command(plain, wrapped))
        c.close()
    return tuple(out)


@dataclass(frozen=True)
class SecureChannelVector:
    handshake: Handshake
    commands: tuple[Command, ...]


def parse_secure_channel(f: Fields) -> SecureChannelVector:
    hs = handshake(f, f.choice("scp", Scp))
    return SecureChannelVector(hs, commands(f, hs.scp, hs.security_level, with_responses=True))


@dataclass(frozen=True)
class CounterDek:
    """The `sequence_counter` form of `put_key` (SCP02): the session DEK of a static DEK and a counter."""

    dek: bytes
    sequence_counter: bytes


@dataclass(frozen=True)
class PutKeyVector:
    scp: Scp
    form: Handshake | CounterDek
    old_kvn: int
    new_kvn: int
    new_keys: tuple[bytes, ...] | DiversifiedKeys  # clear values, or the keys of a master for a KDD
    key_id: int
    expect: bytes


def parse_put_key(f: Fields) -> PutKeyVector:
    scp = f.choice("scp", Scp)
    form: Handshake | CounterDek
    if f.has("sequence_counter"):
        if scp is not Scp.SCP02:
            raise VectorError(f"is {scp.value}, but the sequence_counter form is SCP02 (SCP03 uses the static DEK)",
                              f.path("scp"))
        f.what = "type put_key in the sequence_counter form"
        dek = key_values(f, "static", KeyAlgorithm.DES3, ("dek",))["dek"]
        form = CounterDek(dek, f.hex("sequence_counter", (scp02.COUNTER_LENGTH,)))
    else:
        form = handshake(f, scp)
    if f.has("new_keys") == f.has("new_keys_diversify"):
        raise VectorError("is missing (give either 'new_keys' or 'new_keys_diversify')" if not f.has("new_keys")
                          else "and 'new_keys_diversify' are both given (give one)", f.path("new_keys"))
    lengths = (scp02.SESSION_KEY_LENGTH,) if scp is Scp.SCP02 else None  # SCP02 PUT KEY: 2-key 3DES (§11.8)
    new_keys: tuple[bytes, ...] | DiversifiedKeys
    if f.has("new_keys"):  # any of enc, mac, dek, put in that order (GPCS 2.3.1 §11.8.2.3)
        new_keys = tuple(key_values(f, "new_keys", SCP_ALGORITHM[scp], (), lengths=lengths).values())
        if not new_keys:
            raise VectorError("is empty", f.path("new_keys"))
    else:
        new_keys = diversified_keys(f, "new_keys_diversify", scp)
    key_type = GpKeyType.DES if scp is Scp.SCP02 else GpKeyType.AES
    if f.has("key_type"):
        f.byte("key_type", (key_type,))
    return PutKeyVector(scp, form, f.byte("old_kvn", KVN_RANGE), f.byte("new_kvn", KVN_RANGE), new_keys,
                        f.byte("key_id", KEY_ID_RANGE) if f.has("key_id") else 1, f.hex("expect", minimum=APDU_MIN))


@dataclass(frozen=True)
class SmWrapVector:
    scp: Scp
    i: int
    s_enc: bytes
    s_mac: bytes
    s_rmac: bytes | None
    security_level: int
    initial: bytes  # SCP02 initial ICV, SCP03 initial MAC chaining value
    commands: tuple[Command, ...]


def parse_sm_wrap(f: Fields) -> SmWrapVector:
    scp = f.choice("scp", Scp)
    lengths = (scp02.SESSION_KEY_LENGTH,) if scp is Scp.SCP02 else VALID_LENGTHS[KeyAlgorithm.AES]
    session = f.obj("session", "a session key set ('s_enc', 's_mac', 's_rmac')")
    s_enc, s_mac = session.hex("s_enc", lengths), session.hex("s_mac", lengths)
    s_rmac = session.hex("s_rmac", lengths) if session.has("s_rmac") else None
    session.close()
    initial = f.hex("initial_icv", (scp02.BLOCK,)) if scp is Scp.SCP02 else f.hex("initial_chaining", (scp03.BLOCK,))
    level = f.byte("security_level", SECURITY_LEVELS)
    return SmWrapVector(scp, f.byte("i"), s_enc, s_mac, s_rmac, level, initial,
                        commands(f, scp, level, with_responses=False))
