"""Pagination of the API's lists (docs/api.md, "Pagination"): `limit` and an opaque `cursor`; each page names
the next one's URL in `next` (null on the last page) and in a `Link: <...>; rel="next"` header (RFC 8288)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, TypeVar

from flask import request, url_for

from tsm_core.errors import InvalidRequest

T = TypeVar("T")


def encode(position: str) -> str:
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


def decode(cursor: str | None) -> str:
    """The position a cursor stands for ("" for the first page), or InvalidRequest."""
    if not cursor:
        return ""
    try:
        return base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidRequest("cursor is not one this API gave") from None


def next_url(position: str | None) -> str | None:
    """The URL of the page after `position` (None: this is the last page)."""
    if position is None:
        return None
    args: dict[str, Any] = {k: v for k, v in request.args.items() if k != "cursor"}
    return url_for(str(request.endpoint), **(request.view_args or {}), **args, cursor=encode(position))


def offset_page(items: Sequence[T], limit: int, cursor: str | None) -> tuple[Sequence[T], str | None]:
    """One page of a list the service answered whole, and the next page's URL."""
    position = decode(cursor)
    if position and not position.isdigit():
        raise InvalidRequest("cursor is not one this API gave")
    start = int(position or 0)
    end = start + limit
    return items[start:end], next_url(str(end) if end < len(items) else None)


def page(items: Sequence[Any], next_link: str | None) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The page body, status and `Link` header."""
    headers = {"Link": f'<{next_link}>; rel="next"'} if next_link else {}
    return {"items": items, "next": next_link}, 200, headers
