"""An app's personalization profile: the DGIs its instances get, in order, and where each value comes from
(EMV CPS DGIs; DGIs 8000-8FFF are sensitive and travel encrypted under the channel's DEK, GPCS 2.3.1 §11.11).

Items, space-separated:
- `DGI=hex`: a value every instance gets (not 8000-8FFF);
- `DGI!`: a sensitive value given per card when its job runs, never stored;
- `DGI@key`: the app's key for this SE, diversified in the HSM from the app's master key (usage APP_KEY);
- `DGI#card-number`: the service's card number as tag 5A, BCD, padded with F (sensitive);
- `DGI#purse=hex`: a transit purse record, currency (2) || balance (4) || maximum balance (4) || maximum debit
  (4); a restored balance (device change, re-issue) replaces the balance. An app with one is a purse.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum, unique
from typing import Final

from tsm_core.errors import InvalidRequest

ENCRYPTED_DGIS: Final = range(0x8000, 0x9000)
PURSE_RECORD_LENGTH: Final = 14
BALANCE: Final = slice(2, 6)


@unique
class Source(StrEnum):
    """Where a DGI's value comes from."""

    VALUE = "value"
    GIVEN = "given"
    KEY = "key"
    CARD_NUMBER = "card-number"
    PURSE = "purse"


SENSITIVE: Final = frozenset({Source.GIVEN, Source.KEY, Source.CARD_NUMBER})
_SUFFIX: Final = {"!": Source.GIVEN, "@key": Source.KEY, "#card-number": Source.CARD_NUMBER}


@dataclass(frozen=True)
class PersoItem:
    """One DGI of a personalization profile."""

    dgi: int
    source: Source
    value: bytes = b""

    def __str__(self) -> str:
        if self.source is Source.VALUE:
            return f"{self.dgi:04X}={self.value.hex().upper()}"
        if self.source is Source.PURSE:
            return f"{self.dgi:04X}#purse={self.value.hex().upper()}"
        suffix = next(s for s, source in _SUFFIX.items() if source is self.source)
        return f"{self.dgi:04X}{suffix}"


def _item(text: str) -> PersoItem:
    tag_text, rest = text[:4], text[4:]
    try:
        if len(tag_text) != 4:
            raise ValueError
        dgi = int(tag_text, 16)
        if rest in _SUFFIX:
            item = PersoItem(dgi, _SUFFIX[rest])
        elif rest.startswith("#purse="):
            item = PersoItem(dgi, Source.PURSE, bytes.fromhex(rest[len("#purse="):]))
        elif rest.startswith("="):
            item = PersoItem(dgi, Source.VALUE, bytes.fromhex(rest[1:]))
        else:
            raise ValueError
    except ValueError:
        raise InvalidRequest(f"personalization item {text!r} is not DGI=hex, DGI!, DGI@key, DGI#card-number or "
                             "DGI#purse=hex (DGI: 4 hex digits)") from None
    if item.source in SENSITIVE and dgi not in ENCRYPTED_DGIS:
        raise InvalidRequest(f"DGI {dgi:04X} is sensitive ({item}): it must be 8000..8FFF (EMV CPS)")
    if item.source not in SENSITIVE and dgi in ENCRYPTED_DGIS:
        raise InvalidRequest(f"DGI {dgi:04X} is sensitive (8000..8FFF): write {dgi:04X}!, {dgi:04X}@key or "
                             f"{dgi:04X}#card-number")
    if item.source is Source.PURSE and len(item.value) != PURSE_RECORD_LENGTH:
        raise InvalidRequest(f"a purse record is {PURSE_RECORD_LENGTH} bytes, not {len(item.value)}")
    return item


def parse(profile: str) -> list[PersoItem]:
    """The items of a personalization profile, or InvalidRequest."""
    items = [_item(text) for text in profile.split()]
    tags = [i.dgi for i in items]
    if len(set(tags)) != len(tags):
        raise InvalidRequest("a personalization profile names each DGI once")
    if sum(i.source is Source.PURSE for i in items) > 1:
        raise InvalidRequest("a personalization profile has at most one purse record")
    return items


def purse_record(template: bytes, balance: int | None) -> bytes:
    """The purse record with `balance` (minor units) in place of the template's, when given."""
    if balance is None:
        return template
    if not 0 <= balance <= 0xFFFFFFFF:
        raise InvalidRequest(f"balance {balance} does not fit a purse record")
    return template[:BALANCE.start] + balance.to_bytes(4, "big") + template[BALANCE.stop:]


def card_number_tlv(number: str) -> bytes:
    """Tag 5A: the card number in BCD, padded with F to whole bytes (EMV Book 3 Annex A, PAN)."""
    digits = card_number(number)
    padded = digits + ("F" if len(digits) % 2 else "")
    value = bytes.fromhex(padded)
    return bytes((0x5A, len(value))) + value


def card_number(number: str) -> str:
    """A card number: 12 to 19 decimal digits (ISO/IEC 7812-1), or InvalidRequest."""
    if not number.isdigit() or not number.isascii() or not 12 <= len(number) <= 19:
        raise InvalidRequest("a card number is 12 to 19 decimal digits")
    return number


def masked(number: str) -> str:
    """All digits but the last four replaced by '*' (PCI DSS 3.4 display)."""
    return "*" * (len(number) - 4) + number[-4:]
