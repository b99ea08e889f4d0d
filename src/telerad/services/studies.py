"""The archive's studies as callers reach them: within their scope, each access audited.

Every edge that stores, searches or retrieves images (DIMSE C-STORE, C-FIND,
C-MOVE and C-GET; DICOMweb STOW-RS, QIDO-RS and WADO; the study list) comes here
with who asks (an :class:`~telerad.services.access_audit.Actor`) and what they
may see (a :class:`Scope`). The scope is applied here, once: what a caller may
not see does not exist, and answers the same :class:`NotFound` word for word as
what does not exist. Each access goes into the audit trail here, once per
access (:class:`~telerad.services.access_audit.AccessLog`), never at the edge.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from telerad.domain.audit import Action, EventID, Outcome
from telerad.domain.identity import Principal
from telerad.domain.modalities import InstanceOrigin
from telerad.domain.model import InstanceLocation, Level, StoreResult
from telerad.domain.query import Query
from telerad.domain.uids import is_valid_uid
from telerad.services.access_audit import AccessLog, Actor
from telerad.services.admission import Peer
from telerad.services.archive import Archive


class NotFound(LookupError):
    """No such study, series, instance, frame or bulk data (HTTP 404); says which."""


@dataclass(frozen=True)
class Scope:
    """What a caller sees: these facilities' data (None: every facility) and the studies
    opened to them by break-glass."""

    facility_ids: frozenset[int] | None = None
    granted_studies: frozenset[str] = frozenset()

    @classmethod
    def of(cls, who: Principal) -> Scope:
        return cls(who.facility_ids, who.break_glass)

    @classmethod
    def of_peer(cls, peer: Peer) -> Scope:
        """A DICOM peer's: the facilities it was admitted for (a reading hub: every one)."""
        return cls(peer.scope)

    def sees(self, facility_id: int, study_uid: str = "") -> bool:
        return (
            self.facility_ids is None
            or facility_id in self.facility_ids
            or (bool(study_uid) and study_uid in self.granted_studies)
        )

    def only(self, facility_id: int) -> Scope:
        """Narrowed to one facility: nothing when it is not seen (a facility the caller
        does not see has no studies, like one that does not exist); grants stay out."""
        return Scope(frozenset({facility_id}) if self.sees(facility_id) else frozenset())

    def applied(self, query: Query) -> Query:
        """``query`` within this scope, whatever scope it carried."""
        return replace(query, facility_ids=self.facility_ids, granted_studies=self.granted_studies)


_UID_NAMES = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")


class Studies:
    def __init__(self, archive: Archive, access: AccessLog) -> None:
        self.archive = archive
        self.access = access

    # -- storing --------------------------------------------------------------------------
    def receive(
        self,
        actor: Actor,
        facility_id: int,
        data: bytes,
        origin: InstanceOrigin = InstanceOrigin.ACQUISITION,
    ) -> StoreResult:
        """Keep one instance a peer or an account sent (:meth:`Archive.store`); its study's
        transfer is audited once per actor and study, not per instance."""
        result = self.archive.store(facility_id, data, origin)
        if result.ok:
            self._transferred(actor, result.study_instance_uid or "", facility_id)
        return result

    def receive_batch(
        self,
        actor: Actor,
        facility_id: int,
        items: Iterable[bytes],
        origin: InstanceOrigin = InstanceOrigin.ACQUISITION,
    ) -> list[StoreResult | Exception]:
        """Keep the instances of one request (:meth:`Archive.store_batch`); each study
        something was kept for is audited once."""
        results = self.archive.store_batch(facility_id, items, origin)
        studies = {
            r.study_instance_uid
            for r in results
            if isinstance(r, StoreResult) and r.ok and r.study_instance_uid
        }
        for uid in sorted(studies):
            self._transferred(actor, uid, facility_id)
        return results

    def _transferred(self, actor: Actor, study_uid: str, facility_id: int) -> None:
        self.access.access(
            actor,
            EventID.INSTANCES_TRANSFERRED,
            study_uid,
            action=Action.CREATE,
            facility_id=facility_id,
        )

    # -- searching ------------------------------------------------------------------------
    def search(
        self, actor: Actor, scope: Scope, query: Query, asked: str
    ) -> list[dict[str, object]]:
        """``query`` run within ``scope`` (whatever scope it carried), then audited as a
        Query naming ``asked``, the request as the caller put it. A query that makes no
        sense raises :class:`~telerad.domain.query.QueryError` and is not audited."""
        rows = self.archive.search(scope.applied(query))
        self.access.query(actor, asked)
        return rows

    # -- retrieving -----------------------------------------------------------------------
    def locate(
        self,
        actor: Actor,
        scope: Scope,
        study: str,
        series: str | None = None,
        sop: str | None = None,
        event: EventID = EventID.INSTANCES_ACCESSED,
    ) -> list[InstanceLocation]:
        """The instances under the study (series, instance) that ``scope`` sees; the access
        is audited as ``event``, a failed one too (then :class:`NotFound`)."""
        try:
            found = self.within(scope, study, series, sop)
        except NotFound:
            self.access.access(actor, event, study, outcome=Outcome.MINOR_FAILURE)
            raise
        self.access.access(actor, event, study, facility_id=found[0].facility_id)
        return found

    def within(
        self, scope: Scope, study: str, series: str | None = None, sop: str | None = None
    ) -> list[InstanceLocation]:
        """What :meth:`locate` finds, checking the whole hierarchy, unaudited: for a use
        case that records the access itself. :class:`NotFound` says what was not found."""
        for name, uid in zip(_UID_NAMES, (study, series, sop), strict=True):
            if uid is not None and not is_valid_uid(uid):
                raise NotFound(f"{name} '{uid[:80]}' is not a valid UID")
        if sop is not None:
            # One row by its unique key: the frames hot path, no ORDER BY needed.
            loc = self.archive.index.find_instance(sop)
            if (
                loc is None
                or not scope.sees(loc.facility_id, loc.study_instance_uid)
                or loc.study_instance_uid != study
                or (series is not None and loc.series_instance_uid != series)
            ):
                raise NotFound(f"no instance {sop} in this study and series")
            return [loc]
        if series is not None:
            found = [
                loc
                for loc in self.archive.locate(Level.SERIES, [series])
                if loc.study_instance_uid == study and scope.sees(loc.facility_id, study)
            ]
            if not found:
                raise NotFound(f"no series {series} in study {study}")
            return found
        found = [
            loc
            for loc in self.archive.locate(Level.STUDY, [study])
            if scope.sees(loc.facility_id, study)
        ]
        if not found:
            raise NotFound(f"no study {study}")
        return found

    def retrieve(
        self,
        actor: Actor,
        scope: Scope,
        level: Level,
        uids: Sequence[str],
        studies: frozenset[str] | None = None,
        series: frozenset[str] | None = None,
    ) -> list[InstanceLocation]:
        """The instances under these patients, studies, series or instances (C-MOVE, C-GET)
        that ``scope`` sees, only of ``studies`` and ``series`` when given; each study
        they belong to is audited as transferred."""
        if scope.granted_studies:
            found = [
                loc
                for loc in self.archive.locate(level, uids)
                if scope.sees(loc.facility_id, loc.study_instance_uid)
            ]
        else:
            found = self.archive.locate(level, uids, scope.facility_ids)
        if studies is not None:
            found = [loc for loc in found if loc.study_instance_uid in studies]
        if series is not None:
            found = [loc for loc in found if loc.series_instance_uid in series]
        for study, facility_id in sorted({(f.study_instance_uid, f.facility_id) for f in found}):
            self.access.access(actor, EventID.INSTANCES_TRANSFERRED, study, facility_id=facility_id)
        return found
