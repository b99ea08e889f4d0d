"""Where a study's read stands, in the words of the study list."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ReadState:
    """A study's latest worklist entry (``services.reading.ReadingStore.read_states``)."""

    state: str  # open, completed, withdrawn
    #: Who holds it (open) or read it (completed): display name, else user name; "" if nobody.
    reader: str = ""
    opened: bool = False  # the holder opened (claimed) it


def read_status(read: ReadState | None) -> str:
    """ "not on worklist", "waiting", "assigned to Dr X", "opened by Dr X", "read by Dr X",
    "withdrawn" (more images came after it was queued; it is queued again once stable)."""
    if read is None:
        return "not on worklist"
    if read.state == "completed":
        return f"read by {read.reader}" if read.reader else "read"
    if read.state == "withdrawn":
        return "withdrawn"
    if not read.reader:
        return "waiting"
    return f"{'opened by' if read.opened else 'assigned to'} {read.reader}"
