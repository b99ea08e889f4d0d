"""Sending a DiagnosticReport to a facility's FHIR server and judging the answer.

``PUT {base}/DiagnosticReport/{id}`` (FHIR update, creating the resource the first
time), the id the resource's own: the same report always lands on the same
resource. The outbox's message id goes along as ``X-Request-ID`` so the facility's
logs and ours name one attempt the same way. What comes back decides:

* 2xx: accepted;
* 4xx: refused, with the OperationOutcome's text (its issues' diagnostics or
  details) — except 408 and 429, which say "later", and fail;
* 3xx, 5xx, no connection, no answer within the timeouts, a failed TLS handshake:
  failed, and retried by the outbox.

The sender never raises: the outbox worker decides what happens next.
"""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from typing import Any

import httpx

from telerad.domain.outbox import Delivery, Endpoint, Outcome

FHIR_JSON = "application/fhir+json"
#: Longest detail kept from an answer's text; longest answer kept.
DETAIL = 300
ANSWER = 65536
#: 4xx answers that ask to try again later.
_LATER = frozenset({408, 425, 429})


@dataclass
class FhirSender:
    connect_timeout: float = 5.0
    answer_timeout: float = 15.0
    #: How https endpoints are checked (None: the system's CAs, no client certificate).
    tls: ssl.SSLContext | None = None

    def send(self, endpoint: Endpoint, message_id: str, payload: str) -> Delivery:
        try:
            resource = json.loads(payload)
            kind, rid = str(resource["resourceType"]), str(resource["id"])
        except (ValueError, KeyError, TypeError):
            return Delivery(Outcome.FAILED, "the queued payload is not a FHIR resource")
        url = f"{endpoint.address.rstrip('/')}/{kind}/{rid}"
        timeout = httpx.Timeout(self.answer_timeout, connect=self.connect_timeout)
        headers = {"Content-Type": FHIR_JSON, "Accept": FHIR_JSON, "X-Request-ID": message_id}
        try:
            with (
                httpx.Client(timeout=timeout, verify=self.tls or True) as client,
                client.stream("PUT", url, content=payload.encode("utf-8"), headers=headers) as r,
            ):
                body = _read(r)
                status = r.status_code
                location = r.headers.get("location", "")
        except httpx.TimeoutException:
            return Delivery(Outcome.FAILED, f"{url}: no answer in time")
        except httpx.HTTPError as exc:
            return Delivery(Outcome.FAILED, f"{url}: {_why(exc)}")
        except (ssl.SSLError, OSError) as exc:
            return Delivery(Outcome.FAILED, f"{url}: {_why(exc)}")
        return judge(status, body, location)


def judge(status: int, body: str, location: str = "") -> Delivery:
    """What a FHIR server's answer to an update says (see the module)."""
    text = outcome_text(body)
    if 200 <= status < 300:
        return Delivery(Outcome.ACCEPTED, f"{status}" + (f" {location}" if location else ""), body)
    detail = f"HTTP {status}" + (f": {text}" if text else "")
    if 400 <= status < 500 and status not in _LATER:
        return Delivery(Outcome.REFUSED, detail[:DETAIL], body)
    return Delivery(Outcome.FAILED, detail[:DETAIL], body)


def outcome_text(body: str) -> str:
    """An OperationOutcome's issues as text (diagnostics, else details), "" for others."""
    try:
        parsed: Any = json.loads(body)
    except ValueError:
        return ""
    if not isinstance(parsed, dict) or parsed.get("resourceType") != "OperationOutcome":
        return ""
    texts: list[str] = []
    for issue in parsed.get("issue", []):
        if not isinstance(issue, dict):
            continue
        details = issue.get("details") if isinstance(issue.get("details"), dict) else {}
        said = issue.get("diagnostics") or (details or {}).get("text") or issue.get("code")
        if said and str(said) not in texts:
            texts.append(str(said))
    return "; ".join(texts)[:DETAIL]


def _read(response: httpx.Response) -> str:
    kept = bytearray()
    for chunk in response.iter_bytes():
        kept.extend(chunk[: ANSWER - len(kept)])
        if len(kept) >= ANSWER:
            break
    return kept.decode("utf-8", errors="replace")


def _why(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}"[:DETAIL] if text else type(exc).__name__
