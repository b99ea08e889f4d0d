"""Every access to patient data goes into the audit trail, once per access, not per request.

A viewer opening a study sends hundreds of requests (metadata, frames,
thumbnails); a modality sends a study as hundreds of C-STOREs. The trail wants
one record for "this person accessed this study from there", so repeats of the
same (actor, event, study, outcome) within ``window`` seconds are folded into
the first record. Queries are recorded each time they differ.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.identity import Principal
from telerad.services.audit import AuditService


@dataclass(frozen=True)
class Actor:
    """Who acted: a person, a service account or a DICOM peer (by AE title)."""

    id: str
    role: str = ""
    is_user: bool = True
    source: str = ""

    @classmethod
    def of(cls, who: Principal, source: str) -> Actor:
        return cls(who.username, who.role.value if who.role else "", who.is_user, source)


class AccessLog:
    def __init__(
        self,
        audit: AuditService,
        facility_name: Callable[[int], str] = str,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.audit = audit
        self.facility_name = facility_name
        self.window = window
        self.clock = clock
        self._seen: dict[tuple[object, ...], float] = {}
        self._lock = threading.Lock()

    def _first(self, key: tuple[object, ...]) -> bool:
        """True when ``key`` was not recorded within the window (and remember it now)."""
        now = self.clock()
        with self._lock:
            last = self._seen.get(key)
            if last is not None and now - last < self.window:
                return False
            self._seen[key] = now
            if len(self._seen) > 50_000:  # drop what is past the window
                self._seen = {k: t for k, t in self._seen.items() if now - t < self.window}
        return True

    def access(
        self,
        actor: Actor,
        event: EventID,
        study_uid: str,
        *,
        outcome: Outcome = Outcome.SUCCESS,
        action: Action | None = None,
        facility_id: int | None = None,
        patient_id: str = "",
        detail: str = "",
    ) -> None:
        if not self._first((actor, event, study_uid, outcome, action)):
            return
        facility = self.facility_name(facility_id) if facility_id is not None else ""
        self.audit.record(
            event,
            actor.id,
            actor_role=actor.role,
            actor_is_user=actor.is_user,
            outcome=outcome,
            action=action,
            source_address=actor.source,
            patient_id=patient_id,
            study_uid=study_uid,
            facility=facility,
            detail=detail,
        )

    def query(self, actor: Actor, detail: str, outcome: Outcome = Outcome.SUCCESS) -> None:
        if not self._first((actor, EventID.QUERY, detail, outcome)):
            return
        self.audit.record(
            EventID.QUERY,
            actor.id,
            actor_role=actor.role,
            actor_is_user=actor.is_user,
            outcome=outcome,
            source_address=actor.source,
            detail=detail[:2000],
        )
