"""Strict reading of KAT vector files (docs/kat-format.md, "Strictness"): JSON in, typed values out.

`load_json` refuses what `json.loads` lets through silently (a key given twice, NaN) or dies on (nesting
deeper than the interpreter's recursion limit, integers too long to convert). `Fields` reads one JSON object:
each field once, with its JSON type, hex, length and enum value checked; `close` refuses every field not
read. Each refusal is a one-line `VectorError` naming the field by its path (`static.enc`, `commands[0].plain`).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Collection, Iterable
from enum import StrEnum
from typing import Any, Final, TypeVar

from keyservice.errors import InvalidInput

E = TypeVar("E", bound=StrEnum)
T = TypeVar("T")

HEX: Final = re.compile(r"(?:[0-9A-Fa-f]{2})*")
SHOWN_CHARS: Final = 24
SHOWN_FIELD_CHARS: Final = 60
JSON_TYPES: Final = ((bool, "a boolean"), (int, "an integer"), (float, "a number"), (str, "a string"),
                     (list, "an array"), (dict, "an object"))


class VectorError(InvalidInput):
    """A vector file or one of its vectors cannot be parsed; names the field when there is one."""

    code = "invalid_vector"

    def __init__(self, problem: str, field: str = "") -> None:
        shown_field = field if len(field) <= SHOWN_FIELD_CHARS else field[:SHOWN_FIELD_CHARS] + "..."
        super().__init__(f"field {shown_field!r} {problem}" if field else problem)
        self.field = field


class JsonObject(dict[str, Any]):
    """A decoded JSON object that remembers the keys its text gave more than once."""

    duplicates: frozenset[str] = frozenset()


def _object(pairs: list[tuple[str, Any]]) -> JsonObject:
    obj = JsonObject(pairs)
    if len(obj) != len(pairs):
        obj.duplicates = frozenset(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return obj


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def load_json(text: str) -> object:
    """Decode a vector file; VectorError (one line) for anything that is not plain JSON."""
    try:
        return json.loads(text, object_pairs_hook=_object, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise VectorError(f"not JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    except RecursionError:
        raise VectorError("nested too deeply") from None
    except ValueError as exc:  # NaN / Infinity, an integer longer than sys.get_int_max_str_digits()
        raise VectorError(f"not JSON ({str(exc).split(':')[0]})") from None


def json_type(value: object) -> str:
    """'a string', 'an object', ... as the format's prose names JSON types."""
    if value is None:
        return "null"
    return next((name for kind, name in JSON_TYPES if isinstance(value, kind)), type(value).__name__)


def shown(text: str) -> str:
    """A value from a vector, quoted for an error line: escaped, never longer than a few words."""
    return repr(text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "...")


def one_of(values: Iterable[object]) -> str:
    """'16, 24 or 32'."""
    items = [str(v) for v in values]
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} or {items[-1]}"


class Fields:
    """One JSON object of a vector, read strictly. `what` names it in the unknown-field message."""

    def __init__(self, value: object, path: str, what: str) -> None:
        if not isinstance(value, dict):
            raise VectorError(f"must be an object, not {json_type(value)}", path)
        self._obj: dict[str, Any] = value
        self._path = path
        self._read: set[str] = set()
        self.what = what

    def path(self, name: str) -> str:
        """The dotted path of a field, as error lines name it."""
        return f"{self._path}.{name}" if self._path else name

    def has(self, name: str) -> bool:
        return name in self._obj

    def _get(self, name: str, kind: type[T], kind_name: str) -> T:
        self._read.add(name)
        if name not in self._obj:
            raise VectorError("is missing", self.path(name))
        value = self._obj[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise VectorError(f"must be {kind_name}, not {json_type(value)}", self.path(name))
        return value

    def text(self, name: str) -> str:
        return self._get(name, str, "a string")

    def boolean(self, name: str) -> bool:
        return self._get(name, bool, "a boolean")

    def integer(self, name: str, allowed: Collection[int]) -> int:
        value = self._get(name, int, "an integer")
        if value not in allowed:
            raise VectorError(f"is {value}, expected {_allowed(allowed)}", self.path(name))
        return value

    def hex(self, name: str, lengths: Collection[int] | None = None, *, minimum: int = 0) -> bytes:
        """Hex digits in pairs (either case, no spaces); `lengths` or `minimum` bound the byte length."""
        text = self.text(name)
        if not HEX.fullmatch(text):
            raise VectorError("is not hex (pairs of 0-9 A-F, no spaces)", self.path(name))
        value = bytes.fromhex(text)
        if lengths is not None and len(value) not in lengths:
            raise VectorError(f"is {len(value)} bytes, expected {_allowed(lengths)}", self.path(name))
        if len(value) < minimum:
            raise VectorError(f"is {len(value)} bytes, expected at least {minimum}", self.path(name))
        return value

    def byte(self, name: str, allowed: Collection[int] = range(0x100)) -> int:
        """One byte written as two hex digits ("80"), from `allowed`."""
        text = self.text(name)
        value = int(text, 16) if len(text) == 2 and HEX.fullmatch(text) else None
        if value is None or value not in allowed:
            raise VectorError(f"is {shown(text)}, expected {_allowed(allowed, hex_bytes=True)}", self.path(name))
        return value

    def choice(self, name: str, enum: type[E], allowed: Collection[E] | None = None) -> E:
        """A member of `enum` (of `allowed` when given) named by its value."""
        text = self.text(name)
        members = list(enum) if allowed is None else list(allowed)
        chosen = next((m for m in members if m.value == text), None)
        if chosen is None:
            raise VectorError(f"is {shown(text)}, expected one of {', '.join(m.value for m in members)}",
                              self.path(name))
        return chosen

    def obj(self, name: str, what: str) -> Fields:
        """A nested object; the caller closes it."""
        return Fields(self._get(name, object, "an object"), self.path(name), what)

    def array(self, name: str) -> list[Any]:
        return self._get(name, list, "an array")

    def objects(self, name: str, what: str) -> list[Fields]:
        """An array of objects, each named `name[i]`; the caller closes each."""
        return [Fields(item, f"{self.path(name)}[{n}]", what) for n, item in enumerate(self.array(name))]

    def close(self) -> None:
        """Refuse a field the JSON text gives twice, then the first field that was never read."""
        if isinstance(self._obj, JsonObject) and self._obj.duplicates:
            raise VectorError("is given more than once", self.path(min(self._obj.duplicates)))
        unknown = sorted(set(self._obj) - self._read)
        if unknown:
            raise VectorError(f"is not a field of {self.what}", self.path(unknown[0]))


def _allowed(values: Collection[int], *, hex_bytes: bool = False) -> str:
    if isinstance(values, range) and len(values) > 4:
        low, high = values[0], values[-1]
        return f"{low:02X}..{high:02X}" if hex_bytes else f"{low} to {high}"
    items = [f"{v:02X}" if hex_bytes else str(v) for v in sorted(values)]
    return one_of(items) if len(items) <= 3 else f"one of {', '.join(items)}"
