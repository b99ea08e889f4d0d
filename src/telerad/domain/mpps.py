"""Modality Performed Procedure Step: its statuses and the moves between them, as a table.

PS3.4 F.7 and PS3.3 C.4.14: a step is created IN PROGRESS; an update (N-SET) may
keep it IN PROGRESS or end it COMPLETED or DISCONTINUED; once ended it may no
longer be updated. Each status moves the orders the step performs
(:data:`ORDER_EVENT`). Every refused move has its reason (:class:`StepRefused`),
which the DIMSE adapter answers with the standard's status.
"""

from __future__ import annotations

import enum

from telerad.domain.orders import OrderEvent


class StepStatus(enum.StrEnum):
    """Performed Procedure Step Status (0040,0252)."""

    IN_PROGRESS = "IN PROGRESS"
    COMPLETED = "COMPLETED"
    DISCONTINUED = "DISCONTINUED"


class Refused(enum.Enum):
    """Why a step may not be created or updated as asked (the adapter's status for each)."""

    NO_STATUS = "Performed Procedure Step Status is missing"
    UNKNOWN_STATUS = "status must be IN PROGRESS, COMPLETED or DISCONTINUED"
    NOT_STARTED = "a new step's status must be IN PROGRESS"
    ENDED = "Performed Procedure Step object may no longer be updated"
    EXISTS = "this step exists already"
    NO_SUCH_STEP = "no such Performed Procedure Step"
    NO_SCHEDULED_STEP = "Scheduled Step Attributes Sequence is missing"


class StepRefused(Exception):
    def __init__(self, reason: Refused) -> None:
        super().__init__(reason.value)
        self.reason = reason


#: (the step's status now — None: it does not exist yet —, the status asked) → the status it
#: takes; a pair not in the table is refused with :data:`REFUSED`'s reason for it.
TRANSITIONS: dict[tuple[StepStatus | None, StepStatus], StepStatus] = {
    (None, StepStatus.IN_PROGRESS): StepStatus.IN_PROGRESS,
    (StepStatus.IN_PROGRESS, StepStatus.IN_PROGRESS): StepStatus.IN_PROGRESS,
    (StepStatus.IN_PROGRESS, StepStatus.COMPLETED): StepStatus.COMPLETED,
    (StepStatus.IN_PROGRESS, StepStatus.DISCONTINUED): StepStatus.DISCONTINUED,
}
#: Why each move outside the table is refused.
REFUSED: dict[StepStatus | None, Refused] = {
    None: Refused.NOT_STARTED,
    StepStatus.COMPLETED: Refused.ENDED,
    StepStatus.DISCONTINUED: Refused.ENDED,
}
#: The order event each status brings to the orders the step performs.
ORDER_EVENT = {
    StepStatus.IN_PROGRESS: OrderEvent.START,
    StepStatus.COMPLETED: OrderEvent.COMPLETE,
    StepStatus.DISCONTINUED: OrderEvent.DISCONTINUE,
}
ENDED = frozenset({StepStatus.COMPLETED, StepStatus.DISCONTINUED})


def parse_status(text: str | None) -> StepStatus:
    """The status a modality sent, or :class:`StepRefused`."""
    if not text or not text.strip():
        raise StepRefused(Refused.NO_STATUS)
    try:
        return StepStatus(text.strip().upper())
    except ValueError:
        raise StepRefused(Refused.UNKNOWN_STATUS) from None


def next_status(current: StepStatus | None, asked: StepStatus) -> StepStatus:
    """The status a step takes when ``asked`` for it; :class:`StepRefused` when it may not."""
    moved = TRANSITIONS.get((current, asked))
    if moved is None:
        raise StepRefused(REFUSED.get(current, Refused.UNKNOWN_STATUS))
    return moved
