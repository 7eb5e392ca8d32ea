"""How `tsm` commands read their option values (docs/cli.md, "Values").

A value that does not parse as its type is a usage error (`error[usage]: ...`, exit 2), raised by click before
the command runs. Hex values are never repeated in the message: they may be keys.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from typing import Any

import click

from storage.config import parse_host_port
from tsm_core.transport.errors import RelaySessionIdInvalid
from tsm_core.transport.relay_wire import check_session_id

HEX_SEPARATORS = str.maketrans("", "", " :")
PRICE = re.compile(r"-?[0-9]{1,18}")
"""An integer amount as typed (its range is the service's to check)."""


class HexByte(click.ParamType[int]):
    """A one-byte value in hex, `0x` accepted (key version numbers, key ids, security levels): 30, 0x30, 7F."""

    name = "HEX-BYTE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value).strip().lower().removeprefix("0x")
        if not 1 <= len(text) <= 2 or any(c not in "0123456789abcdef" for c in text):
            self.fail(f"{value!r} is not one hex byte (00..FF, e.g. 30 or 0x30)", param, ctx)
        return int(text, 16)


class HexData(click.ParamType[bytes]):
    """Bytes written in hex, two digits a byte; spaces and colons between bytes are ignored."""

    name = "HEX"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> bytes:
        if isinstance(value, bytes):
            return value
        try:
            return bytes.fromhex(str(value).translate(HEX_SEPARATORS))
        except ValueError:
            self.fail("not valid hex (two digits 0-9 A-F a byte; the value is not repeated: it may be a key)",
                      param, ctx)


class HostPort(click.ParamType[tuple[str, int]]):
    """HOST:PORT with a port 1..65535; an empty HOST means 127.0.0.1."""

    name = "HOST:PORT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        try:
            return parse_host_port(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class HttpUrl(click.ParamType[str]):
    """An http:// or https:// URL with a host."""

    name = "URL"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        try:
            parts = urllib.parse.urlsplit(text)
            host = parts.hostname
        except ValueError:
            host = None
        if host is None or parts.scheme not in ("http", "https") or not text.isprintable():
            self.fail(f"expected an http:// or https:// URL, got {value!r}", param, ctx)
        return text


class Seconds(click.ParamType[float]):
    """A finite number of seconds in (0, maximum]."""

    name = "SECONDS"

    def __init__(self, maximum: float) -> None:
        self.maximum = maximum

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        try:
            seconds = float(value)
        except ValueError:
            seconds = math.nan
        if not math.isfinite(seconds) or not 0 < seconds <= self.maximum:
            self.fail(f"{value!r} is not a number of seconds in (0, {self.maximum:g}]", param, ctx)
        return seconds


class OperationPrice(click.ParamType[tuple[str, int]]):
    """OP=MINOR: the price of one operation, an integer in minor units."""

    name = "OP=MINOR"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> tuple[str, int]:
        if isinstance(value, tuple):
            return value
        operation, sep, price = str(value).partition("=")
        if not sep or not PRICE.fullmatch(price):
            self.fail(f"{value!r} is not OP=MINOR (an operation and an integer price, e.g. lock=20)", param, ctx)
        return operation, int(price)


class RelaySessionId(click.ParamType[str]):
    """A relay session id: 16 to 64 URL-safe characters (docs/relay.md); never repeated in the message."""

    name = "SESSION"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return check_session_id(str(value))
        except RelaySessionIdInvalid as exc:
            self.fail(str(exc), param, ctx)
