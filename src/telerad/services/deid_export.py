"""A stored study de-identified for research or teaching (PS3.15 Basic Profile and
options), for a caller who may see it; every export goes into the audit trail
(Export, PS3.15 A.5.3.6), a refused one too.

UIDs are remapped consistently per facility with the secret ``telerad deid`` uses;
instances that may carry burned-in text are held back (only counted) for a person
to check and release with the CLI.
"""

from __future__ import annotations

from pathlib import Path

from telerad.domain.audit import EventID, Outcome
from telerad.domain.deid import Keys, Profile
from telerad.services.access_audit import AccessLog, Actor
from telerad.services.audit import AuditService
from telerad.services.deid import StudyExport, deidentify_instances, load_secret
from telerad.services.ports import Index
from telerad.services.studies import NotFound, Scope, Studies


class DeidExport:
    def __init__(
        self,
        studies: Studies,
        index: Index,
        access: AccessLog,
        audit: AuditService,
        secret_file: Path,
    ) -> None:
        self.studies = studies
        self.index = index
        self.access = access
        self.audit = audit
        self.secret_file = secret_file

    def study(self, actor: Actor, scope: Scope, study_uid: str, profile: Profile) -> StudyExport:
        """Every instance of the study de-identified (:class:`NotFound` when ``scope``
        does not see it, audited as a failed export)."""
        try:
            locations = self.studies.within(scope, study_uid)
        except NotFound:
            self.access.access(actor, EventID.EXPORT, study_uid, outcome=Outcome.MINOR_FAILURE)
            raise
        facility = self.index.facility_by_id(locations[0].facility_id)
        assert facility is not None
        keys = Keys(load_secret(self.secret_file), facility.name)
        read = self.studies.archive.read
        export = deidentify_instances((read(loc) for loc in locations), profile, keys)
        options = ", ".join(sorted(profile.options)) or "basic profile"
        self.audit.record(
            EventID.EXPORT,
            actor.id,
            actor_role=actor.role,
            actor_is_user=actor.is_user,
            source_address=actor.source,
            study_uid=study_uid,
            facility=facility.name,
            detail=f"de-identified ({options}): "
            f"{len(export.released)} released, {len(export.quarantined)} held back",
        )
        return export
