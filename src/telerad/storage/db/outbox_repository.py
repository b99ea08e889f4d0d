"""The outbox and the facilities' results endpoints (SQLAlchemy Core).

Claiming is two steps in one transaction: pick the heads (per facility and
channel, the oldest pending message) that are due and unclaimed, then claim each
with a conditional UPDATE (still pending, still unclaimed) whose row count says
whether this worker got it. On PostgreSQL the pick locks its rows ``FOR UPDATE
SKIP LOCKED``, so concurrent workers pass over each other's heads instead of
waiting; on SQLite the single writer serialises the updates. Either way a message
is claimed by one worker at a time, and a facility's second message is not a head
while its first is pending (claimed or not).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, delete, exists, func, insert, or_, select, update
from sqlalchemy.orm import aliased

from telerad.domain.outbox import Channel, Endpoint, MessageState, Outcome
from telerad.services.outbox import Attempt, Claim, OutboxFilter, OutboxMessage
from telerad.storage.db import tables as t
from telerad.storage.db.times import utc

_O, _A, _E, _R = t.outbox, t.outbox_attempt, t.results_endpoint, t.report
_PENDING, _SENT, _DEAD = (s.value for s in MessageState)

_COLUMNS = (*_O.c, _R.c.study_instance_uid)


def _message(row: Any) -> OutboxMessage:
    created = utc(row.created_at)
    return OutboxMessage(
        id=row.id,
        facility_id=row.facility_id,
        report_id=row.report_id,
        report_version=row.report_version,
        channel=Channel(row.channel),
        message_id=row.message_id,
        payload=row.payload,
        state=MessageState(row.state),
        attempts=row.attempts,
        refusals=row.refusals,
        next_at=utc(row.next_at),
        created_at=created,
        queued_at=utc(row.queued_at) if row.queued_at is not None else created,
        sent_at=utc(row.sent_at),
        last_error=row.last_error,
        answer=row.answer,
        destination=row.destination,
        study_instance_uid=row.study_instance_uid or "",
    )


class SqlOutbox:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.postgres = engine.dialect.name == "postgresql"

    def claim(self, now: datetime, lease: timedelta, limit: int) -> list[Claim]:
        earlier = aliased(_O)
        unclaimed = or_(_O.c.claimed_until.is_(None), _O.c.claimed_until <= now)
        heads = (
            select(_O.c.id)
            .where(
                _O.c.state == _PENDING,
                _O.c.next_at <= now,
                unclaimed,
                ~exists().where(
                    earlier.c.state == _PENDING,
                    earlier.c.facility_id == _O.c.facility_id,
                    earlier.c.channel == _O.c.channel,
                    earlier.c.id < _O.c.id,
                ),
            )
            .order_by(_O.c.id)
            .limit(limit)
        )
        if self.postgres:
            heads = heads.with_for_update(skip_locked=True, of=_O)
        until = now + lease
        claimed: list[tuple[int, str]] = []
        with self.engine.begin() as conn:
            for (outbox_id,) in conn.execute(heads).all():
                token = uuid.uuid4().hex
                got = conn.execute(
                    update(_O)
                    .where(_O.c.id == outbox_id, _O.c.state == _PENDING, unclaimed)
                    .values(claimed_until=until, claim=token)
                ).rowcount
                if got == 1:
                    claimed.append((int(outbox_id), token))
            if not claimed:
                return []
            rows = {
                row.id: row
                for row in conn.execute(
                    select(*_COLUMNS)
                    .select_from(_O.outerjoin(_R, _R.c.id == _O.c.report_id))
                    .where(_O.c.id.in_([i for i, _ in claimed]))
                )
            }
        return [Claim(_message(rows[i]), token, until) for i, token in claimed]

    def record(self, claim: Claim, attempt: Attempt, next_at: datetime | None) -> bool:
        held = and_(_O.c.id == claim.message.id, _O.c.claim == claim.token, _O.c.state == _PENDING)
        values: dict[str, object] = {
            "claim": None,
            "claimed_until": None,
            "destination": attempt.destination,
            "answer": attempt.answer,
        }
        if attempt.outcome is Outcome.ACCEPTED:
            values.update(state=_SENT, sent_at=attempt.at, attempts=_O.c.attempts + 1)
        else:
            values.update(
                attempts=_O.c.attempts + 1,
                refusals=_O.c.refusals + int(attempt.outcome is Outcome.REFUSED),
                last_error=attempt.detail,
                state=_PENDING if next_at is not None else _DEAD,
                next_at=next_at if next_at is not None else attempt.at,
            )
        with self.engine.begin() as conn:
            if conn.execute(update(_O).where(held).values(values)).rowcount != 1:
                return False
            conn.execute(
                insert(_A).values(
                    outbox_id=claim.message.id,
                    at=attempt.at,
                    destination=attempt.destination,
                    outcome=attempt.outcome.value,
                    detail=attempt.detail,
                    answer=attempt.answer,
                )
            )
        return True

    def get(self, outbox_id: int) -> OutboxMessage | None:
        q = (
            select(*_COLUMNS)
            .select_from(_O.outerjoin(_R, _R.c.id == _O.c.report_id))
            .where(_O.c.id == outbox_id)
        )
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _message(row) if row is not None else None

    def find(self, f: OutboxFilter) -> list[OutboxMessage]:
        q = select(*_COLUMNS).select_from(_O.outerjoin(_R, _R.c.id == _O.c.report_id))
        if f.states:
            q = q.where(_O.c.state.in_(sorted(s.value for s in f.states)))
        if f.facility_ids is not None:
            q = q.where(_O.c.facility_id.in_(sorted(f.facility_ids)))
        if f.report_id is not None:
            q = q.where(_O.c.report_id == f.report_id)
        if f.channel is not None:
            q = q.where(_O.c.channel == f.channel.value)
        q = q.order_by(_O.c.id.desc()).limit(f.limit).offset(f.offset)
        with self.engine.connect() as conn:
            return [_message(row) for row in conn.execute(q)]

    def attempts(self, outbox_id: int) -> list[Attempt]:
        q = select(_A).where(_A.c.outbox_id == outbox_id).order_by(_A.c.id)
        with self.engine.connect() as conn:
            return [
                Attempt(utc(r.at), r.destination, Outcome(r.outcome), r.detail, r.answer)
                for r in conn.execute(q)
            ]

    def retry(self, outbox_id: int, now: datetime) -> OutboxMessage | None:
        with self.engine.begin() as conn:
            moved = conn.execute(
                update(_O)
                .where(_O.c.id == outbox_id, _O.c.state == _DEAD)
                .values(
                    state=_PENDING,
                    attempts=0,
                    refusals=0,
                    next_at=now,
                    queued_at=now,
                    claim=None,
                    claimed_until=None,
                )
            ).rowcount
        return self.get(outbox_id) if moved == 1 else None

    def counts(self, facility_ids: frozenset[int] | None = None) -> dict[MessageState, int]:
        q = select(_O.c.state, func.count()).group_by(_O.c.state)
        if facility_ids is not None:
            q = q.where(_O.c.facility_id.in_(sorted(facility_ids)))
        found = dict.fromkeys(MessageState, 0)
        with self.engine.connect() as conn:
            for state, n in conn.execute(q):
                found[MessageState(state)] = int(n)
        return found


class SqlEndpoints:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def endpoint(self, facility_id: int, kind: Channel) -> Endpoint | None:
        q = select(_E).where(_E.c.facility_id == facility_id, _E.c.kind == kind.value)
        with self.engine.connect() as conn:
            row = conn.execute(q).first()
        return _endpoint(row) if row is not None else None

    def endpoints(self, facility_id: int | None = None) -> list[Endpoint]:
        q = select(_E).order_by(_E.c.facility_id, _E.c.kind)
        if facility_id is not None:
            q = q.where(_E.c.facility_id == facility_id)
        with self.engine.connect() as conn:
            return [_endpoint(row) for row in conn.execute(q)]

    def put(self, endpoint: Endpoint) -> Endpoint:
        key = and_(_E.c.facility_id == endpoint.facility_id, _E.c.kind == endpoint.kind.value)
        values = {"address": endpoint.address, "tls": int(endpoint.tls)}
        with self.engine.begin() as conn:
            if conn.execute(update(_E).where(key).values(values)).rowcount == 0:
                conn.execute(
                    insert(_E).values(
                        facility_id=endpoint.facility_id, kind=endpoint.kind.value, **values
                    )
                )
        return endpoint

    def remove(self, facility_id: int, kind: Channel) -> bool:
        with self.engine.begin() as conn:
            gone = conn.execute(
                delete(_E).where(_E.c.facility_id == facility_id, _E.c.kind == kind.value)
            ).rowcount
        return bool(gone)


def _endpoint(row: Any) -> Endpoint:
    return Endpoint(row.facility_id, Channel(row.kind), row.address, bool(row.tls))
