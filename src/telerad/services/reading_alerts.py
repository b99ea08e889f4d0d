"""What the supervisor is alerted to, from what happened on the worklist.

An event that needs a person (a study nobody may read, a reader away with a
study nobody else may take, the ladder's alert-supervisor step, a breach) raises
an alert for the study's entry; one live alert per kind and entry. Alerts clear
themselves when their cause goes (someone holds the study, it is read or
withdrawn) and stay on the board until then; acknowledging one records who saw
it (audited) without hiding it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from telerad.domain.reading_entries import CLEARED_BY_ASSIGNMENT, AlertChange, AlertKind
from telerad.workflow.explain import span
from telerad.workflow.model import ReadingStudy
from telerad.workflow.rules import EscalationAction
from telerad.workflow.worklist import (
    Assigned,
    Breached,
    Completed,
    Escalated,
    Event,
    NoReader,
    Reassigned,
    Unattended,
)

#: Every live alert of an entry (its study was read or withdrawn).
ALL = None


def _held(reader: int | None, name: Callable[[int | None], str]) -> str:
    return f"held by {name(reader)}" if reader is not None else "nobody holds it"


def alert_changes(
    event: Event, study: ReadingStudy | None, name: Callable[[int | None], str]
) -> list[AlertChange]:
    """The alerts ``event`` raises or clears (``study`` as the worklist held it then)."""
    match event:
        case Assigned(at=at):
            return [AlertChange(at, clear=CLEARED_BY_ASSIGNMENT)]
        case Reassigned(to_reader=to, at=at) if to is not None:
            return [AlertChange(at, clear=frozenset({AlertKind.READER_AWAY}))]
        case Completed(at=at):
            return [AlertChange(at, clear=ALL)]
        case NoReader(at=at, reason=reason):
            return [AlertChange(at, AlertKind.NO_READER, reason)]
        case Unattended(reader_id=reader, at=at):
            text = (
                f"{name(reader)} is away (session idle) and nobody else may read it now; "
                "it stays with them until someone may take it or they come back."
            )
            return [AlertChange(at, AlertKind.READER_AWAY, text)]
        case Escalated(action=action, at=at, reader_id=reader) if study is not None:
            gone = study.elapsed_fraction(at)
            target = span(study.turnaround)
            if action is EscalationAction.ALERT_SUPERVISOR:
                left = span(study.deadline - at)
                text = (
                    f"{gone:.0%} of its {target} target gone, {left} left; {_held(reader, name)}."
                )
                return [AlertChange(at, AlertKind.BREACH_RISK, text)]
            if action is EscalationAction.WIDEN_POOL:
                text = (
                    f"{gone:.0%} of its {target} target gone unassigned: offered to readers "
                    "over their queue cap."
                )
                return [AlertChange(at, AlertKind.ESCALATED, text)]
        case Breached(at=at, reader_id=reader) if study is not None:
            deadline = study.deadline.strftime("%H:%M UTC")
            text = f"Unread past its deadline ({deadline}); {_held(reader, name)}."
            return [AlertChange(at, AlertKind.BREACHED, text)]
    return []


def back_changes(at: datetime) -> list[AlertChange]:
    """The reader of the study came back: it is no longer unattended."""
    return [AlertChange(at, clear=frozenset({AlertKind.READER_AWAY}))]


def gone_changes(at: datetime) -> list[AlertChange]:
    """The study left the worklist unread (withdrawn): nothing about it is live."""
    return [AlertChange(at, clear=ALL)]
