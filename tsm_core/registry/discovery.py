"""`tsm se discover`: read a card (`tsm_core.flows.discover`), prove the ISD key opens it, register what it said.

The SE profile is what the card said (SCP and "i" from INITIALIZE UPDATE or the recognition data, the ISD's AID
from its FCI) plus what the operator knows (the key diversification, the KCV method, the initial SSD key).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Final

from globalplatform.cplc import encode_cplc
from globalplatform.scp import SecurityLevel
from keyservice.channels import ChannelSpec, DivMethod
from keyservice.policy import Purpose
from tsm_core.context import Tsm
from tsm_core.errors import InvalidRequest
from tsm_core.flows.channel import ChannelSessionLike, IsdInfo
from tsm_core.flows.discover import CardSurvey, discover
from tsm_core.registry import service as registry
from tsm_core.registry.service import ProfileSpec, SeRegistration
from tsm_core.transport.base import Transport

DEFAULT_I: Final = {0x02: 0x55, 0x03: 0x00}
"""The "i" assumed when the card does not say (GPCS 2.3.1 §E.1.1: SCP02 '55' is the common implementation)."""
CPLC_HEADER: Final = 3
"""'9F7F' and the length byte before the 42 CPLC bytes."""


@dataclass(frozen=True)
class Discovery:
    """What the operator gives besides the card: the ISD key(s) and how they apply, and what to register."""

    keys: tuple[str, ...]
    diversification: str = "none"
    kvn: int = 0
    level: int = SecurityLevel.C_MAC
    device_kind: str = "card"
    vendor: str = ""
    kcv_method: str = "gp"
    initial_ssd_key: str = ""
    profile: str = ""


def registration(survey: CardSurvey, given: Discovery) -> SeRegistration:
    """The registry entry for a surveyed card."""
    channel = survey.channel
    if survey.isd_aid is None:
        raise InvalidRequest("the card named no ISD AID (neither its FCI nor GET STATUS)")
    i = channel.i if channel.i is not None else DEFAULT_I.get(channel.scp, 0)
    profile = ProfileSpec(scp=channel.scp, i=i, diversification=given.diversification,
                          isd_aid=survey.isd_aid.hex().upper(), kcv_method=given.kcv_method,
                          initial_ssd_key=given.initial_ssd_key, name=given.profile)
    cplc = survey.cplc
    return SeRegistration(
        kdd=survey.kdd, profile=profile, isd_keys=given.keys, isd_kvn=channel.key_version,
        cin=(survey.cin or b"").hex().upper(), iin=(survey.iin or b"").hex().upper(),
        cplc=encode_cplc(cplc)[CPLC_HEADER:].hex().upper() if cplc else "",
        ic_serial=cplc.ic_serial_number.hex().upper() if cplc else "", device_kind=given.device_kind,
        vendor=given.vendor, life_cycle=survey.life_cycle.name if survey.life_cycle else "",
        free_nv=survey.resources.free_non_volatile if survey.resources else None,
        free_volatile=survey.resources.free_volatile if survey.resources else None,
        seen=True, content=survey.content)


def discover_se(tsm: Tsm, transport: Transport, given: Discovery, target: str) -> tuple[str, CardSurvey]:
    """Survey the card, open its ISD with the given key(s) as proof, and register it; (SE id, survey)."""
    method = None if given.diversification == "none" else DivMethod(given.diversification)
    spec = ChannelSpec(given.keys, method, given.level, given.kvn)
    request = tsm.request(Purpose.SE_MANAGEMENT, target)

    def open_channel(isd: IsdInfo) -> ChannelSessionLike:
        return tsm.keys.channels.open(request, replace(spec, aid=isd.aid, i=isd.i))

    survey = discover(transport, open_channel, given.level)
    return registry.register(tsm, registration(survey, given)), survey
