"""Purpose-scoped views of the barrier (`KeyService.channels`): MAC contexts, secure channels, card-cryptogram
diagnosis.

A `MacContext` checks policy and writes audit records at open and close, with lean calls between. A
`ChannelSession` checks policy for every key it uses when it is opened and writes one audit record when the
card cryptogram verified, before the EXTERNAL AUTHENTICATE leaves the key service (a `refused` record when it
did not verify); that record covers the commands the channel then wraps. The SCP is read from the card's key information
(GPCS 2.3.1 §E.5.1.6, Amd D §7.1.1.6). Diagnosis tries every key × diversification against the card
cryptogram and never builds an EXTERNAL AUTHENTICATE.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from pkcs11.mechanisms import Mechanism

from globalplatform import initupdate
from globalplatform.initupdate import HOST_CHALLENGE_LENGTH, KEY_INFO_OFFSET
from globalplatform.keys import KeyAlgorithm
from globalplatform.scp import Scp, SecurityLevel
from keyservice.audit import AUDIT_KEY_LABEL
from keyservice.core import Core
from keyservice.errors import CryptogramMismatch, InvalidInput, KeyServiceError, PolicyDenied, gp_input
from keyservice.gp import appkey, putkey, storedata
from keyservice.gp.channel import ChannelState, SecureChannel
from keyservice.gp.diversify import ALGORITHM, Diversifier, DivMethod, KeySet
from keyservice.inventory import KeyUsage
from keyservice.models import KeyRecord
from keyservice.policy import Operation, Request

__all__ = ["ChannelSession", "ChannelSpec", "ChannelState", "Channels", "DivMethod", "MacContext", "Scp",
           "SecurityLevel", "Trial"]

_SCP_ALGORITHM: Final = {Scp.SCP02: KeyAlgorithm.DES3, Scp.SCP03: KeyAlgorithm.AES}
_MAC_CONTEXT_USAGES: Final = frozenset({KeyUsage.RECEIPT_KEY, KeyUsage.DAP_KEY})
_MAC_MECHANISM: Final = {KeyAlgorithm.AES: Mechanism.AES_CMAC, KeyAlgorithm.DES3: Mechanism.DES3_CMAC,
                         KeyAlgorithm.HMAC: Mechanism.SHA256_HMAC}


class MacContext:
    """MACs with one key for one caller, purpose and target (Vault-style scoped view of the barrier)."""

    def __init__(self, core: Core, req: Request, rec: KeyRecord, handle: int) -> None:
        self._core, self._req, self._label, self._kcv = core, req, rec.label, rec.kcv
        self._handle = handle
        self._mechanism = _MAC_MECHANISM[KeyAlgorithm(rec.algorithm)]
        self.count = 0

    def __repr__(self) -> str:
        return f"MacContext({self._label}, {self._req.target}, count={self.count})"

    def mac(self, data: bytes) -> bytes:
        """The full-length CMAC/HMAC of `data`."""
        hsm = self._core.hsm
        with hsm.lock:
            out = hsm.raw.sign(self._handle, self._mechanism, data)
        self.count += 1
        return out

    def close(self) -> None:
        """Write the closing audit record (how many MACs were made)."""
        self._core.audit.append(self._core.entry(self._req, "mac-close", [(self._label, self._kcv)], "ok",
                                                 f"count={self.count}"))

    def __enter__(self) -> MacContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class ChannelSpec:
    """Which keys open the channel and how.

    `keys` is one label (a KMC when `diversification` is given, else one key used as ENC, MAC and DEK, as
    with published test keys) or three labels (ENC, MAC, DEK).
    """

    keys: tuple[str, ...]
    diversification: DivMethod | None = None
    security_level: int = SecurityLevel.C_MAC
    kvn: int = 0
    i: int | None = None
    aid: bytes | None = None  # the selected SD's AID: checks a pseudo-random SCP03 card challenge (Amd D §6.2.2.1)

    def __post_init__(self) -> None:
        if len(self.keys) not in (1, 3):
            raise InvalidInput("a secure channel takes one key label (or KMC) or three (ENC, MAC, DEK)")
        if self.diversification is not None and len(self.keys) != 1:
            raise InvalidInput("diversification starts from one master key (KMC)")
        if not 0 <= self.kvn <= 0xFF:
            raise InvalidInput(f"key version number {self.kvn} is not a byte")


def scp_of(response: bytes) -> Scp:
    """The SCP named in the key information of an INITIALIZE UPDATE response."""
    with gp_input():
        number = initupdate.scp_id(response)
    try:
        return Scp(f"{number:02X}")
    except ValueError:
        raise InvalidInput(f"the card answered for SCP{number:02X}, which this key service does not implement") \
            from None


def _channel(core: Core, records: Sequence[KeyRecord], scp: Scp, method: DivMethod | None,
             security_level: int, i: int | None, aid: bytes | None = None) -> SecureChannel:
    """A host-side channel over the keys of `records` (never key values: handles only)."""
    algorithm = _SCP_ALGORITHM[scp]
    for rec in records:
        if rec.algorithm != algorithm.value:
            raise InvalidInput(f"SCP{scp.value} needs {algorithm.value} keys; {rec.label} is {rec.algorithm}")
    hsm = core.hsm
    if method is not None:
        if ALGORITHM[method] is not algorithm:
            raise InvalidInput(f"{method} diversification does not fit SCP{scp.value}")
        diversifier = Diversifier(hsm.hot_handle(records[0].label), method, records[0].length)
        return SecureChannel(hsm, scp, diversifier=diversifier, security_level=security_level, i=i, aid=aid)
    enc, mac, dek = (records[0],) * 3 if len(records) == 1 else tuple(records)
    static = KeySet.from_labels(hsm, algorithm, records[0].length, enc.label, mac.label, dek.label)
    return SecureChannel(hsm, scp, static=static, security_level=security_level, i=i, aid=aid)


class ChannelSession:
    """One secure channel for one caller, purpose and target (create with `KeyService.channels.open`)."""

    def __init__(self, core: Core, req: Request, spec: ChannelSpec, records: list[KeyRecord]) -> None:
        self._core, self._req, self._spec, self._records = core, req, spec, records
        self._channel: SecureChannel | None = None
        self._host_challenge = b""

    def __repr__(self) -> str:
        return f"ChannelSession({self._req.target}, {len(self._records)} key(s))"

    def _used(self) -> list[tuple[str, str]]:
        return [(r.label, r.kcv) for r in self._records]

    def initialize_update(self, host_challenge: bytes | None = None) -> bytes:
        """INITIALIZE UPDATE (CLA 80 INS 50 P1 = KVN, GPCS 2.3.1 §11.14.2), random host challenge by default."""
        challenge = secrets.token_bytes(HOST_CHALLENGE_LENGTH) if host_challenge is None else host_challenge
        with gp_input():
            command = initupdate.command(self._spec.kvn, challenge)
        self._host_challenge = challenge
        return command

    def authenticate(self, response: bytes) -> bytes:
        """Verify the card cryptogram (response without SW) and return the EXTERNAL AUTHENTICATE APDU.

        A cryptogram that does not verify raises CryptogramMismatch: no EXTERNAL AUTHENTICATE is built, so
        the card's retry counter is never spent on wrong keys.
        """
        if not self._host_challenge or self._channel is not None:
            raise InvalidInput("authenticate follows exactly one initialize_update")
        scp = scp_of(response)
        core = self._core
        try:
            self._channel = channel = _channel(core, self._records, scp, self._spec.diversification,
                                               self._spec.security_level, self._spec.i, self._spec.aid)
            channel.initialize_update(self._spec.kvn, self._host_challenge)
            channel.verify_card_response(response)
        except KeyServiceError as exc:
            raise core.refuse(self._req, Operation.SECURE_CHANNEL, self._used(), exc) from None
        command = channel.external_authenticate()
        core.audit.append(core.entry(self._req, Operation.SECURE_CHANNEL, self._used(), "ok",
                                     f"scp={scp.value} kvn={channel.kvn:02X}"))  # before the command leaves
        return command

    def _open(self) -> SecureChannel:
        if self._channel is None:
            raise InvalidInput("the secure channel is not authenticated")
        return self._channel

    def wrap(self, capdu: bytes) -> bytes:
        """Protect one command at the channel's security level."""
        return self._open().wrap(capdu)

    def unwrap(self, rapdu: bytes) -> bytes:
        """Verify/decrypt one response (MacMismatch, UnwrapFailed)."""
        return self._open().unwrap(rapdu)

    @property
    def scp(self) -> Scp:
        return self._open().scp

    def snapshot(self) -> ChannelState:
        """The open channel's state, for `Channels.resume` in this or another process (no key in it)."""
        return self._open().snapshot()

    def _resume(self, scp: Scp, state: ChannelState) -> None:
        core = self._core
        try:
            self._channel = channel = _channel(core, self._records, scp, self._spec.diversification,
                                               self._spec.security_level, self._spec.i, self._spec.aid)
            channel.resume(state)
        except KeyServiceError as exc:
            raise core.refuse(self._req, Operation.SECURE_CHANNEL, self._used(), exc) from None
        core.audit.append(core.entry(self._req, Operation.SECURE_CHANNEL, self._used(), "ok",
                                     f"resumed scp={scp.value} kvn={state.kvn:02X} counter={state.counter}"))

    def put_key(self, source: ChannelSpec, old_kvn: int, new_kvn: int) -> putkey.PutKeyCommand:
        """The plain PUT KEY for a new ENC/MAC/DEK set (GPCS 2.3.1 §11.8), to be sent through `wrap`.

        `source` names the new keys like a channel spec: a KMC with a diversification method (the new card
        keys are diversified for this card's KDD as wrappable session objects), or labels of keys created
        exportable. Policy `put-key` is checked for each source key; the record lists their labels and KCVs.
        """
        channel = self._open()
        core = self._core
        records = [core.authorise(self._req, Operation.PUT_KEY, label) for label in source.keys]
        hsm = core.hsm
        if source.diversification is not None:
            keys = Diversifier(hsm.hot_handle(records[0].label), source.diversification,
                               records[0].length).keyset(hsm, channel.kdd, wrappable=True)
        else:
            enc, mac, dek = (records[0],) * 3 if len(records) == 1 else tuple(records)
            keys = KeySet.from_labels(hsm, KeyAlgorithm(records[0].algorithm), records[0].length, enc.label,
                                      mac.label, dek.label)
        used = [(r.label, r.kcv) for r in records]
        try:
            new = [putkey.NewKey(h, keys.algorithm, keys.length) for h in (keys.enc, keys.mac, keys.dek or keys.enc)]
            command = putkey.put_key(channel, hsm, old_kvn, new_kvn, new)
        except KeyServiceError as exc:
            raise core.refuse(self._req, Operation.PUT_KEY, used, exc) from None
        finally:
            keys.destroy(hsm)
        core.audit.append(core.entry(self._req, Operation.PUT_KEY, used, "ok", f"kvn {old_kvn:02X}->{new_kvn:02X}"))
        return command

    def put_single_key(self, label: str, new_kvn: int, old_kvn: int = 0, key_id: int = 1) -> putkey.PutKeyCommand:
        """The plain PUT KEY for one inventory key (GPCS 2.3.1 §11.8.2.3), to be sent through `wrap`: the public
        half of an RSA pair in clear (the DM token key as KVN '70', an RSA DAP key as '73'), or a symmetric key
        under the channel's DEK with its KCV (the receipt key as '71', a DAP key as '73').

        A symmetric key must have been created exportable: it leaves the HSM only under the card's DEK. Policy
        `put-key` is checked for the key; the record names it, its KCV, the KVNs and the key id.
        """
        channel = self._open()
        core = self._core
        rec = core.authorise(self._req, Operation.PUT_KEY, label)
        used = [(rec.label, rec.kcv)]
        algorithm = KeyAlgorithm(rec.algorithm)
        try:
            if algorithm is KeyAlgorithm.RSA:
                modulus, exponent = core.hsm.public_key(label)
                command = putkey.build_put_public_key(old_kvn, new_kvn, modulus, exponent, key_id)
            elif not rec.exportable:
                raise InvalidInput(f"{label} is not exportable: a symmetric key put on cards must be created "
                                   "--exportable (it then leaves the HSM only under the card's DEK)")
            else:
                new = putkey.NewKey(core.hsm.handle(label), algorithm, rec.length)
                command = putkey.put_key(channel, core.hsm, old_kvn, new_kvn, [new], key_id)
        except KeyServiceError as exc:
            raise core.refuse(self._req, Operation.PUT_KEY, used, exc) from None
        core.audit.append(core.entry(self._req, Operation.PUT_KEY, used, "ok",
                                     f"kvn {old_kvn:02X}->{new_kvn:02X} key {key_id:02X}"))
        return command

    def encrypt_dgi(self, dgi: int, value: bytes) -> bytes:
        """A DGI whose value is encrypted with the channel's DEK for STORE DATA (GPCS 2.3.1 §11.11.2.3; EMV CPS:
        SCP02 3DES-ECB under the session DEK, SCP03 AES-CBC under the static DEK, value padded 80 00..).

        Policy `store-data` is checked for the channel's keys; one record per DGI names its tag, never its value.
        """
        channel = self._open()
        core = self._core
        for rec in self._records:
            core.authorise(self._req, Operation.STORE_DATA, rec.label)
        used = self._used()
        try:
            encrypted = storedata.encrypt_dgi(channel, core.hsm, dgi, value)
        except KeyServiceError as exc:
            raise core.refuse(self._req, Operation.STORE_DATA, used, exc) from None
        core.audit.append(core.entry(self._req, Operation.STORE_DATA, used, "ok", f"dgi={dgi:04X}"))
        return encrypted

    def app_key_dgi(self, dgi: int, label: str, kdd: bytes) -> bytes:
        """A DGI for STORE DATA whose value is the per-SE application key of the APP_KEY master `label` for the SE
        with this KDD (`keyservice.gp.appkey`), padded 80 00.. and encrypted under the channel's DEK as
        `encrypt_dgi` encrypts a value (the card strips the padding).

        Policy `store-data` is checked for the channel's keys and for `label` (an APP_KEY only); one record names
        the master's label and KCV, the DGI tag and the KDD, never a value. Where the key is on the way
        (`app_key_dgi_scp03`: wrapped in the HSM; `app_key_dgi_scp02` on SoftHSM2: in host memory for the call)
        the HSM profile says.
        """
        channel = self._open()
        core = self._core
        for rec in self._records:
            core.authorise(self._req, Operation.STORE_DATA, rec.label)
        app = core.authorise(self._req, Operation.STORE_DATA, label, usages=frozenset({KeyUsage.APP_KEY}))
        used = [(app.label, app.kcv), *self._used()]
        try:
            with appkey.per_se_key(core.hsm, core.hsm.hot_handle(label), app.length, kdd, wrappable=True) as key:
                encrypted = storedata.encrypt_key_dgi(core.hsm, channel.scp, channel.session_dek(), dgi, key,
                                                      app.length)
        except KeyServiceError as exc:
            raise core.refuse(self._req, Operation.STORE_DATA, used, exc) from None
        core.audit.append(core.entry(self._req, Operation.STORE_DATA, used, "ok",
                                     f"dgi={dgi:04X} app-key kdd={kdd.hex().upper()}"))
        return encrypted

    @staticmethod
    def check_put_key(command: putkey.PutKeyCommand, response_data: bytes) -> None:
        """The card's PUT KEY response must be the new KVN and the KCVs of the keys sent (KcvMismatch)."""
        putkey.check_response(command, response_data)

    def close(self) -> None:
        """Destroy the session keys (idempotent). The opening record covers the channel's commands."""
        channel, self._channel = self._channel, None
        if channel is not None:
            channel.close()

    def __enter__(self) -> ChannelSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class Trial:
    """One key × diversification tried against the card cryptogram."""

    key: str
    diversification: str
    result: str  # "match", "no match" or why it was not applicable

    @property
    def matched(self) -> bool:
        return self.result == "match"


def _methods(algorithm: str) -> list[DivMethod | None]:
    fits = [m for m, alg in ALGORITHM.items() if alg.value == algorithm]
    return [None, *fits]


def _diagnose(core: Core, records: Sequence[KeyRecord], response: bytes, host_challenge: bytes) -> list[Trial]:
    """Every key × diversification method against the card cryptogram (GPCS §E.4.2.1, Amd D §6.2.2.2)."""
    if len(host_challenge) != HOST_CHALLENGE_LENGTH:
        raise InvalidInput(f"the host challenge is {HOST_CHALLENGE_LENGTH} bytes, not {len(host_challenge)}")
    scp = scp_of(response)
    trials: list[Trial] = []
    for rec in records:
        if rec.algorithm not in (KeyAlgorithm.AES.value, KeyAlgorithm.DES3.value):
            trials.append(Trial(rec.label, "-", f"not {_SCP_ALGORITHM[scp].article} {_SCP_ALGORITHM[scp].label} key"))
            continue
        for method in _methods(rec.algorithm):
            name = method.value if method else "none"
            try:
                channel = _channel(core, [rec], scp, method, SecurityLevel.C_MAC, None)
            except InvalidInput as exc:
                trials.append(Trial(rec.label, name, str(exc)))
                break
            with channel:
                channel.initialize_update(response[KEY_INFO_OFFSET], host_challenge)
                try:
                    channel.verify_card_response(response)
                    trials.append(Trial(rec.label, name, "match"))
                except CryptogramMismatch:
                    trials.append(Trial(rec.label, name, "no match"))
    return trials


class Channels:
    """Secure channels, MAC contexts and diagnosis, each for one caller, purpose and target."""

    def __init__(self, core: Callable[[], Core]) -> None:
        self._core = core

    def open(self, req: Request, spec: ChannelSpec) -> ChannelSession:
        """A secure channel with the keys of `spec`; policy is checked for each key now."""
        core = self._core()
        records = [core.authorise(req, Operation.SECURE_CHANNEL, label, chain=n == 0) for n, label in
                   enumerate(spec.keys)]
        return ChannelSession(core, req, spec, records)

    def resume(self, req: Request, spec: ChannelSpec, scp: Scp, state: ChannelState) -> ChannelSession:
        """A channel some session opened (and `snapshot` saved) going on: policy is checked for each key again,
        the session keys are derived again in the HSM and one audit record is written (docs/keyservice.md)."""
        session = self.open(req, spec)
        session._resume(scp, state)
        return session

    def mac(self, req: Request, label: str) -> MacContext:
        """A purpose-scoped MAC handle on one key: policy and audit at open and close, lean calls between.

        CMAC for DES3/AES keys, HMAC-SHA256 for HMAC keys (the audit key is never reachable here, nor an
        application master: `KeyService.apps.mac` MACs with the per-SE key derived from it)."""
        if label == AUDIT_KEY_LABEL:
            raise PolicyDenied("the audit key MACs audit records only")
        core = self._core()
        rec = core.authorise(req, Operation.MAC, label, usages=_MAC_CONTEXT_USAGES)
        if rec.algorithm not in _MAC_MECHANISM:
            raise core.refuse(req, Operation.MAC, [(rec.label, rec.kcv)],
                              InvalidInput(f"{label} is {rec.algorithm}: a MAC context takes a secret key"))
        with core.audited(req, Operation.MAC, [(rec.label, rec.kcv)]):
            handle = core.hsm.hot_handle(label)
        return MacContext(core, req, rec, handle)

    def diagnose(self, req: Request, labels: Sequence[str], response: bytes, host_challenge: bytes) -> list[Trial]:
        """Which key and diversification produce the card cryptogram (never an EXTERNAL AUTHENTICATE)."""
        if not labels:
            raise InvalidInput("diagnose needs at least one key label")
        core = self._core()
        records = [core.authorise(req, Operation.DIAGNOSE, label) for label in labels]
        with core.audited(req, Operation.DIAGNOSE, [(r.label, r.kcv) for r in records]):
            return _diagnose(core, records, response, host_challenge)
