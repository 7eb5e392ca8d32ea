"""The evidence of a ceremony: its transcript (participants, times, steps with who signed them and the KCVs,
exceptions, approvals) as JSON, and as a printable HTML page with signature lines; the transcript's SHA-256 is
anchored in the key service's audit chain (an `evidence` record naming the ceremony id and the hash), so
`verify` can tell a transcript exported from this installation from an altered one."""

from __future__ import annotations

import hashlib
import html
import json
from dataclasses import asdict
from datetime import datetime
from typing import Any, Final

from ceremonies.errors import EvidenceMismatch
from ceremonies.views import CeremonyView

FORMAT: Final = "tsm.ceremony-transcript.v1"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def transcript(view: CeremonyView) -> dict[str, Any]:
    """The transcript of a ceremony (no secret: names, times, labels, KCVs, job ids)."""
    body = _plain(asdict(view))
    body.pop("evidence_sha256", None)
    return {"format": FORMAT, **body}


def canonical(body: dict[str, Any]) -> bytes:
    """Sorted-key compact JSON: the bytes the anchored SHA-256 covers."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def digest(body: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(body)).hexdigest()


def document(body: dict[str, Any], sha256: str, seq: int) -> str:
    """The exported JSON file: the transcript, its hash and the audit record that anchors it."""
    return json.dumps({"transcript": body, "sha256": sha256, "audit_seq": seq}, indent=2, sort_keys=True) + "\n"


def read(text: str) -> tuple[dict[str, Any], str]:
    """The transcript of an exported file and the hash it claims (EvidenceMismatch when malformed or altered)."""
    try:
        data = json.loads(text)
        body, claimed = data["transcript"], str(data["sha256"])
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise ValueError
    except (ValueError, KeyError, TypeError):
        raise EvidenceMismatch("not a ceremony transcript exported by tsm ceremony export") from None
    if digest(body) != claimed:
        raise EvidenceMismatch("the transcript does not match its SHA-256: it was altered after export")
    return body, claimed


def printable(body: dict[str, Any], sha256: str) -> str:
    """A printable page: the steps, KCVs, approvals and exceptions, and a signature line per participant."""
    e = html.escape
    rows = "".join(f"<tr><td>{s['number']}</td><td>{e(s['role'])}</td><td>{e(s['title'])}</td>"
                   f"<td>{e(s['signed_by'] or '')}</td><td>{e(s['signed_at'] or '')}</td>"
                   f"<td>{e(', '.join(f'{k}={v}' for k, v in s['output'].items()))}</td></tr>" for s in body["steps"])
    events = "".join(f"<li>{e(v['at'])} {e(v['kind'])} {e(v['actor'])} {e(str(v['step'] or ''))} "
                     f"{e(v['detail'])}</li>" for v in body["events"])
    signatures = "".join(f"<p class='sig'>{e(name)} ({e(role)}): signature ______________________ "
                         "date __________</p>" for name, role in body["participants"].items())
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{e(body['id'])}</title><style>"
            "body{font-family:serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #000;"
            "padding:4px}.sig{margin-top:2.5em}</style></head><body>"
            f"<h1>{e(body['title'])}</h1><p>Ceremony {e(body['id'])} ({e(body['type'])}), requested by "
            f"{e(body['requester'])}, {e(body['state'])}. Started {e(body['created_at'])}, ended "
            f"{e(body['ended_at'] or '-')}. {e(body['abort_reason'])}</p>"
            f"<p>Parameters: {e(', '.join(f'{k}={v}' for k, v in body['params'].items()))}</p>"
            "<table><tr><th>Step</th><th>Role</th><th>What</th><th>Signed by</th><th>At</th><th>Output</th></tr>"
            f"{rows}</table><h2>Transcript</h2><ul>{events}</ul>"
            f"<p>SHA-256 of the JSON transcript (anchored in the audit chain): <code>{e(sha256)}</code></p>"
            f"<h2>Signatures</h2>{signatures}</body></html>\n")
