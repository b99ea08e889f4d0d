"""The outbox and results endpoints in memory: the same promises as
storage/db/outbox_repository.py (tests/integration/contracts/test_outbox_contract.py)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from tests.fakes.reports import FakeReports

from telerad.domain.outbox import Channel, Endpoint, MessageState, Outcome
from telerad.domain.reports import Report
from telerad.services.outbox import Attempt, Claim, OutboxFilter, OutboxMessage
from telerad.services.reports import Outgoing


@dataclass
class FakeOutbox:
    messages: dict[int, OutboxMessage] = field(default_factory=dict)
    claims: dict[int, tuple[str, datetime]] = field(default_factory=dict)
    tried: dict[int, list[Attempt]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def attach(self, reports: FakeReports) -> FakeOutbox:
        """Queue what ``reports``' writes carry, as the SQL store does in the write's
        transaction (only writes that succeed queue anything)."""
        write = reports.write

        def writing(report: Report, seen: int, outgoing: Sequence[Outgoing] = ()) -> Report:
            written = write(report, seen, outgoing)
            for o in outgoing:
                self.queue(report, o)
            return written

        reports.write = writing  # type: ignore[method-assign]
        return self

    def queue(self, report: Report, o: Outgoing) -> OutboxMessage:
        with self._lock:
            if any(m.message_id == o.message_id for m in self.messages.values()):
                raise ValueError(f"duplicate message id {o.message_id}")
            message = OutboxMessage(
                id=len(self.messages) + 1,
                facility_id=report.facility_id,
                report_id=report.id or 0,
                report_version=report.version,
                channel=Channel(o.channel),
                message_id=o.message_id,
                payload=o.payload,
                state=MessageState.PENDING,
                attempts=0,
                refusals=0,
                next_at=o.due,
                created_at=o.due,
                queued_at=o.due,
                study_instance_uid=report.study_instance_uid,
            )
            self.messages[message.id] = message
            return message

    def claim(self, now: datetime, lease: timedelta, limit: int) -> list[Claim]:
        with self._lock:
            heads: dict[tuple[int, Channel], OutboxMessage] = {}
            for m in sorted(self.messages.values(), key=lambda m: m.id):
                if m.state is MessageState.PENDING:
                    heads.setdefault((m.facility_id, m.channel), m)
            claimed = []
            for m in sorted(heads.values(), key=lambda m: m.id):
                held = self.claims.get(m.id)
                if m.next_at > now or (held is not None and held[1] > now):
                    continue
                token = uuid.uuid4().hex
                self.claims[m.id] = (token, now + lease)
                claimed.append(Claim(m, token, now + lease))
                if len(claimed) == limit:
                    break
            return claimed

    def record(self, claim: Claim, attempt: Attempt, next_at: datetime | None) -> bool:
        with self._lock:
            m = self.messages[claim.message.id]
            held = self.claims.get(m.id)
            if held is None or held[0] != claim.token or m.state is not MessageState.PENDING:
                return False
            del self.claims[m.id]
            self.tried.setdefault(m.id, []).append(attempt)
            common = {
                "attempts": m.attempts + 1,
                "destination": attempt.destination,
                "answer": attempt.answer,
            }
            if attempt.outcome is Outcome.ACCEPTED:
                m = replace(m, state=MessageState.SENT, sent_at=attempt.at, **common)
            else:
                m = replace(
                    m,
                    refusals=m.refusals + (attempt.outcome is Outcome.REFUSED),
                    last_error=attempt.detail,
                    state=MessageState.PENDING if next_at is not None else MessageState.DEAD,
                    next_at=next_at if next_at is not None else attempt.at,
                    **common,
                )
            self.messages[m.id] = m
            return True

    def get(self, outbox_id: int) -> OutboxMessage | None:
        return self.messages.get(outbox_id)

    def find(self, f: OutboxFilter) -> list[OutboxMessage]:
        found = [
            m
            for m in sorted(self.messages.values(), key=lambda m: m.id, reverse=True)
            if (not f.states or m.state in f.states)
            and (f.facility_ids is None or m.facility_id in f.facility_ids)
            and (f.report_id is None or m.report_id == f.report_id)
            and (f.channel is None or m.channel is f.channel)
        ]
        return found[f.offset : f.offset + f.limit]

    def attempts(self, outbox_id: int) -> list[Attempt]:
        return list(self.tried.get(outbox_id, []))

    def retry(self, outbox_id: int, now: datetime) -> OutboxMessage | None:
        with self._lock:
            m = self.messages.get(outbox_id)
            if m is None or m.state is not MessageState.DEAD:
                return None
            m = replace(
                m, state=MessageState.PENDING, attempts=0, refusals=0, next_at=now, queued_at=now
            )
            self.messages[m.id] = m
            self.claims.pop(m.id, None)
            return m

    def counts(self, facility_ids: frozenset[int] | None = None) -> dict[MessageState, int]:
        found = dict.fromkeys(MessageState, 0)
        for m in self.messages.values():
            if facility_ids is None or m.facility_id in facility_ids:
                found[m.state] += 1
        return found


@dataclass
class FakeEndpoints:
    known: dict[tuple[int, Channel], Endpoint] = field(default_factory=dict)

    def endpoint(self, facility_id: int, kind: Channel) -> Endpoint | None:
        return self.known.get((facility_id, kind))

    def endpoints(self, facility_id: int | None = None) -> list[Endpoint]:
        return [
            e
            for _, e in sorted(self.known.items(), key=lambda kv: (kv[0][0], kv[0][1].value))
            if facility_id is None or e.facility_id == facility_id
        ]

    def put(self, endpoint: Endpoint) -> Endpoint:
        self.known[(endpoint.facility_id, endpoint.kind)] = endpoint
        return endpoint

    def remove(self, facility_id: int, kind: Channel) -> bool:
        return self.known.pop((facility_id, kind), None) is not None
