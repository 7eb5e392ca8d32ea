"""The DGIs one job personalizes, resolved from the app's profile (tsm_core/catalog/perso.py) and its service:
constant values, values given for the run, the app's key for this SE (made in the HSM), the service's card
number (kept sealed by the key service's data key, unsealed for the run), a purse record with a restored balance.
"""

from __future__ import annotations

from dataclasses import dataclass

from keyservice.inventory import KeyState, KeyUsage
from keyservice.policy import Purpose
from tsm_core.catalog.perso import SENSITIVE, Source, card_number_tlv, purse_record
from tsm_core.catalog.views import AppView
from tsm_core.context import Tsm
from tsm_core.errors import NotFound
from tsm_core.jobs.plan import JobParams
from tsm_core.registry.models import ServiceInstance

ISSUER: str = "issuer"


@dataclass(frozen=True)
class Dgi:
    """One DGI of a job's personalization."""

    tag: int
    value: bytes | None
    """None: a sensitive value that was not given for this run (the job cannot personalize)."""
    encrypted: bool
    key: str = ""
    """The app master key's label when the value is the SE's app key (made and encrypted in the HSM)."""


def data_key(tsm: Tsm) -> str:
    """The label of the issuer's active data key (usage DATA_KEY), which seals card numbers at rest."""
    found = [k for k in tsm.keys.keys.list_keys(KeyUsage.DATA_KEY, ISSUER)
             if k.state == KeyState.ACTIVE.value and k.signed]
    if not found:
        raise NotFound("the issuer has no active data key to seal card numbers: tsm keys generate --label LABEL "
                       "--type aes --length 32 --usage DATA_KEY --owner issuer, then tsm keys state LABEL active")
    return found[-1].label


def seal_card_number(tsm: Tsm, service_id: str, number: str) -> str:
    """The card number sealed for service `service_id` (hex), as the service row keeps it."""
    request = tsm.request(Purpose.SERVICE, service_id)
    return tsm.keys.apps.seal(request, data_key(tsm), number.encode("ascii"), service_id.encode()).hex()


def unseal_card_number(tsm: Tsm, service_id: str, sealed: str) -> str:
    """The card number a service row keeps sealed."""
    request = tsm.request(Purpose.SERVICE, service_id)
    return tsm.keys.apps.unseal(request, data_key(tsm), bytes.fromhex(sealed), service_id.encode()).decode()


def resolve(tsm: Tsm, app: AppView, service: ServiceInstance | None, params: JobParams,
            given: dict[int, bytes]) -> list[Dgi]:
    """The job's DGIs in the profile's order."""
    out: list[Dgi] = []
    for item in app.perso_items:
        encrypted = item.source in SENSITIVE
        if item.source is Source.VALUE:
            out.append(Dgi(item.dgi, item.value, False))
        elif item.source is Source.PURSE:
            out.append(Dgi(item.dgi, purse_record(item.value, params.balance), False))
        elif item.source is Source.GIVEN:
            out.append(Dgi(item.dgi, given.get(item.dgi), encrypted))
        elif item.source is Source.KEY:
            out.append(Dgi(item.dgi, b"" if app.app_key else None, encrypted, app.app_key))
        else:
            sealed = service.card_number_sealed if service is not None else ""
            value = card_number_tlv(unseal_card_number(tsm, service.id, sealed)) if service and sealed else None
            out.append(Dgi(item.dgi, value, encrypted))
    return out
