"""`Idempotency-Key` on the API's mutating POSTs (draft-ietf-httpapi-idempotency-key-header; docs/api.md).

The first request with a key claims it (per credential) together with a SHA-256 of its method, path and body;
its successful answer is stored. The same key again with the same request answers the stored response
(`Idempotent-Replayed: true`) without doing the work twice; with another request it is a 422 problem
`idempotency_key_reused`; while the first is still running, a 409 `idempotency_in_progress` (retryable). A
request that fails releases its claim, so a retry does the work. Records live in the database: any worker
answers.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, TypeVar, cast

from flask import Response, make_response, request
from sqlalchemy import DateTime, Integer, String, Text, delete
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base
from tsm_core.context import now
from tsm_core.errors import Conflict, InvalidRequest
from web.api.context import api_key, sessions

HEADER: Final = "Idempotency-Key"
KEY: Final = re.compile(r"[\x21-\x7e]{1,255}")
View = TypeVar("View", bound=Callable[..., Any])


class IdempotencyRecord(Base):
    """A claimed `Idempotency-Key` of one credential, and the stored answer once there is one."""

    __tablename__ = "api_idempotency"

    credential: Mapped[str] = mapped_column(String(16), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_sha256: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    """None while the first request runs."""
    body: Mapped[str | None] = mapped_column(Text, nullable=True)
    location: Mapped[str | None] = mapped_column(String(512), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyKeyReused(InvalidRequest):
    """The key was used before with another request."""

    code = "idempotency_key_reused"
    status = 422


class IdempotencyInProgress(Conflict):
    """The first request with this key has not answered yet."""

    code = "idempotency_in_progress"


def _digest() -> str:
    return hashlib.sha256(b"\n".join((request.method.encode(), request.path.encode(), request.get_data()))).hexdigest()


def _claim(credential: str, key: str, digest: str) -> IdempotencyRecord | None:
    """Claim the key (None), or the record of an earlier request with it."""
    try:
        with sessions()() as db, db.begin():
            db.add(IdempotencyRecord(credential=credential, key=key, request_sha256=digest, created_at=now()))
        return None
    except IntegrityError:
        with sessions()() as db:
            found = db.get(IdempotencyRecord, (credential, key))
        if found is None:  # released meanwhile: claim again
            return _claim(credential, key, digest)
        return found


def _release(credential: str, key: str) -> None:
    with sessions()() as db, db.begin():
        db.execute(delete(IdempotencyRecord).where(IdempotencyRecord.credential == credential,
                                                   IdempotencyRecord.key == key))


def _store(credential: str, key: str, response: Response) -> None:
    with sessions()() as db, db.begin():
        record = db.get(IdempotencyRecord, (credential, key))
        assert record is not None  # claimed by this request
        record.status, record.body = response.status_code, response.get_data(as_text=True)
        record.location = response.headers.get("Location")


def _replay(record: IdempotencyRecord, digest: str) -> Response:
    if record.request_sha256 != digest:
        raise IdempotencyKeyReused(f"{HEADER} was used before with another request; use a new key")
    if record.status is None:
        raise IdempotencyInProgress(f"the first request with this {HEADER} has not answered yet; retry")
    response = Response(record.body, status=record.status, mimetype="application/json")
    if record.location:
        response.headers["Location"] = record.location
    response.headers["Idempotent-Replayed"] = "true"
    return response


def idempotent(view: View) -> View:
    """The view honours `Idempotency-Key` (optional; recommended for every POST that starts work)."""
    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        key = request.headers.get(HEADER)
        if key is None:
            return view(*args, **kwargs)
        if not KEY.fullmatch(key):
            raise InvalidRequest(f"{HEADER} is 1 to 255 visible ASCII characters")
        credential, digest = api_key().id, _digest()
        earlier = _claim(credential, key, digest)
        if earlier is not None:
            return _replay(earlier, digest)
        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            _release(credential, key)
            raise
        if response.status_code >= 300:
            _release(credential, key)
        else:
            _store(credential, key, response)
        return response
    return cast(View, wrapper)
