"""The Modality Worklist as a use case: a modality's scheduled procedures, audited.

A modality asks with keys (:mod:`telerad.domain.mwl_query`); each order of its
own facility that the worklist offers and that matches is answered, a page of
orders at a time. Every item carries a Study Instance UID: an order without one
is given one the first time the worklist offers it, and keeps it, so the images
the modality makes under it match the order. A peer admitted without a facility
(a reading hub) is no modality: its worklist is empty. Every query goes into the
audit trail, the hub's too.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, tzinfo

from telerad.domain.mwl_query import (
    OFFERED_STATUSES,
    Answer,
    Key,
    answer,
    matches,
    matching_value,
    offered,
    worklist_item,
)
from telerad.domain.orders import Order, OrderFilter
from telerad.domain.query import Exact, Match, Range
from telerad.services.access_audit import AccessLog, Actor
from telerad.services.admission import Peer
from telerad.services.orders import OrderService, Origin

#: Orders read from the store at a time.
PAGE = 200


def _day(value: str) -> datetime:
    return datetime.strptime(value, "%Y%m%d").replace(tzinfo=UTC)


def order_filter(facility_id: int, keys: tuple[Key, ...]) -> OrderFilter:
    """What the store can narrow by; every key is matched again on the items.

    Dates are widened by a day each way: the store keeps UTC, the worklist
    shows the configured time zone.
    """

    def exact(keyword: str) -> str | None:
        match = matching_value(keys, keyword)
        return match.value if isinstance(match, Exact) else None

    date: Match | None = matching_value(keys, "ScheduledProcedureStepStartDate")
    start = end = None
    if isinstance(date, Exact):
        start, end = _day(date.value) - timedelta(days=1), _day(date.value) + timedelta(days=2)
    elif isinstance(date, Range):
        start = _day(date.low) - timedelta(days=1) if date.low else None
        end = _day(date.high) + timedelta(days=2) if date.high else None
    return OrderFilter(
        facility_ids=frozenset({facility_id}),
        accession_number=exact("AccessionNumber"),
        patient_id=exact("PatientID"),
        statuses=OFFERED_STATUSES,
        modality=exact("Modality"),
        station_ae=exact("ScheduledStationAETitle"),
        scheduled_from=start,
        scheduled_to=end,
        limit=PAGE,
    )


def described(keys: tuple[Key, ...]) -> str:
    """The keys that match something, as the audit trail names the query."""
    parts = []
    for key in keys:
        if key.match is not None:
            parts.append(f"{key.keyword}={key.match}")
        if key.items:
            inner = described(key.items)
            if inner:
                parts.append(inner)
    return ", ".join(parts)


class ModalityWorklist:
    def __init__(self, orders: OrderService, access: AccessLog) -> None:
        self.orders = orders
        self.access = access

    def items(
        self, actor: Actor, peer: Peer, keys: tuple[Key, ...], zone: tzinfo
    ) -> Iterator[tuple[Order, Answer]]:
        """The query audited now; then, as they are read, the offered orders of the peer's
        facility that match, each with its answer (times in ``zone``)."""
        self.access.query(actor, f"C-FIND MWL {described(keys)}")
        if peer.scope is None:  # a reading hub, not a modality
            return iter(())
        origin = Origin("MWL", actor.id, actor.source)
        return self.orders_of(peer.store_facility_id, keys, zone, origin)

    def orders_of(
        self, facility_id: int, keys: tuple[Key, ...], zone: tzinfo, origin: Origin
    ) -> Iterator[tuple[Order, Answer]]:
        """The facility's offered orders that match, each with its answer."""
        f = order_filter(facility_id, keys)
        offset = 0
        while True:
            page = self.orders.find(replace(f, offset=offset))
            for order in page:
                if not offered(order):
                    continue
                if not matches(worklist_item(order, zone), keys):
                    continue
                if not order.requested_study_uid:
                    order = self.orders.with_requested_study_uid(order, origin)
                yield order, answer(worklist_item(order, zone), keys)
            if len(page) < PAGE:
                return
            offset += PAGE
