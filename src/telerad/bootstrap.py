"""Wiring: settings → engine → stores → services. The only place adapters meet.

:func:`bootstrap` only builds the platform: no database statement, no thread.
Its life has three steps, each in one place:

* :meth:`Platform.open` brings the data up: the schema migrated, this process
  marked as running in the data dir, and what an unclean stop lost recovered
  from the blobs. Every command and test opens the platform it uses;
  ``with open_platform(settings) as platform:`` opens and closes it.
* :meth:`Platform.start` starts the background loops (:mod:`telerad.runtime`):
  the index syncer, reconciliation, the reading worklist's clock. Only
  ``telerad serve`` starts them (a command may start the one it needs).
* :meth:`Platform.close` stops the loops, syncs what is pending, and removes the
  running marker, so the next start finds a clean stop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import Engine

from telerad.adapters.fhir.results import fhir_deliveries
from telerad.adapters.fhir.sender import FhirSender
from telerad.adapters.hl7.oru import Parties
from telerad.adapters.hl7.results import hl7_deliveries
from telerad.adapters.hl7.sender import MllpSender
from telerad.adapters.oidc import OidcProvider
from telerad.adapters.peers import calls_as_registered
from telerad.adapters.sr.objects import ReportObjects
from telerad.adapters.sr.results import ArchiveStep, CStoreSender, WithArchive, dicom_deliveries
from telerad.adapters.tls import client_context
from telerad.config import Settings
from telerad.domain.identity import Role
from telerad.domain.model import Facility
from telerad.domain.outbox import Channel, RetryPolicy
from telerad.domain.procedures import load_catalogue
from telerad.runtime import Runtime, loops_of
from telerad.services.access_audit import AccessLog
from telerad.services.admission import Admission
from telerad.services.archive import Archive
from telerad.services.audit import AuditService
from telerad.services.auth import AuthPolicy, AuthService
from telerad.services.deid import SECRET_FILE
from telerad.services.deid_export import DeidExport
from telerad.services.leadership import Leadership
from telerad.services.messages import Messages
from telerad.services.mpps import MppsService
from telerad.services.mwl import ModalityWorklist
from telerad.services.orders import OrderService
from telerad.services.outbox import OutboxWorker, combined
from telerad.services.reading import ReadingService
from telerad.services.reconcile import ReadinessPolicy, Reconciler
from telerad.services.recovery import SLACK_SECONDS, recover, recover_incomplete
from telerad.services.report_facts import StudyReportFacts
from telerad.services.report_publication import ReportPublication
from telerad.services.reports import Deliveries, ReportService
from telerad.services.results import ResultsService
from telerad.services.studies import Studies
from telerad.services.templates import TemplateService
from telerad.storage.blobs.filesystem import FileBlobStore
from telerad.storage.blobs.keys import FacilityKeys, load_master_key
from telerad.storage.blobs.protected import ProtectedBlobStore
from telerad.storage.db.audit_repository import SqlAuditRepository
from telerad.storage.db.database import make_engine, migrate, sqlite_path
from telerad.storage.db.identity_repository import SqlIdentity
from telerad.storage.db.index_repository import SqlIndex
from telerad.storage.db.lease_repository import SqlLeases
from telerad.storage.db.order_repository import SqlOrders
from telerad.storage.db.outbox_repository import SqlEndpoints, SqlOutbox
from telerad.storage.db.reading_repository import SqlReading
from telerad.storage.db.reconcile_repository import SqlReadingStates
from telerad.storage.db.report_repository import SqlReports
from telerad.storage.db.syncer import IndexSyncer, claim, release
from telerad.storage.db.template_repository import SqlTemplates
from telerad.storage.db.unit_of_work import SqlUnitOfWork
from telerad.storage.secret import load_or_create_secret


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    index: SqlIndex
    blobs: FileBlobStore | ProtectedBlobStore
    archive: Archive
    audit: AuditService
    identity: SqlIdentity
    auth: AuthService
    access: AccessLog
    orders: OrderService
    reconciler: Reconciler
    #: The reading worklist (routing, holds, history); its clock runs under `telerad serve`.
    reading: ReadingService
    #: Performed procedure steps (MPPS) and the orders they move.
    mpps: MppsService
    #: Which facility a write belongs to, for every way data comes in.
    admission: Admission = field(init=False)
    #: Report templates: the shipped ones and those imported, and which a study gets.
    templates: TemplateService = field(init=False)
    #: The archive's studies within each caller's scope, every access audited.
    studies: Studies = field(init=False)
    #: A stored study de-identified for research or teaching.
    deid: DeidExport = field(init=False)
    #: HL7 v2 messages admitted, their receipts audited.
    messages: Messages = field(init=False)
    #: The modality worklist (DICOM MWL C-FIND).
    mwl: ModalityWorklist = field(init=False)
    #: Syncs the blob directories (and the SQLite WAL) every few seconds.
    syncer: IndexSyncer
    listeners: dict[str, bool] = field(default_factory=dict)
    #: OpenID Connect sign-in, when an issuer and client id are configured.
    oidc: OidcProvider | None = None
    #: Per-facility data keys, when a master key is configured (checked on open).
    keys: FacilityKeys | None = None
    #: Results to the facilities: their endpoints, the outbox, dead letters.
    results: ResultsService = field(init=False)
    #: Delivers the outbox (the ``outbox`` loop; ``telerad worker`` runs it alone).
    outbox: OutboxWorker = field(init=False)
    #: What a signature queues for its facility (ReportService's ``deliveries``).
    deliveries: Deliveries = field(init=False)
    #: Reports: drafts, signatures, addenda and corrections (services/reports.py).
    reports: ReportService = field(init=False)
    #: Signed reports as FHIR DiagnosticReports: read, searched, pushed.
    publication: ReportPublication = field(init=False)
    #: Which process decides the reading worklist (one of several on a database).
    leadership: Leadership = field(init=False)
    runtime: Runtime = field(init=False)
    _opened: bool = field(default=False, init=False)
    _closed: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.admission = Admission(
            self.index,
            self.default_facility,
            self.auth.has_users,
            calls_as_registered,
            audit=self.audit,
        )
        self.studies = Studies(self.archive, self.access)
        secret = self.settings.data_dir / SECRET_FILE
        self.deid = DeidExport(self.studies, self.index, self.access, self.audit, secret)
        self.messages = Messages(self.admission, self.audit)
        self.mwl = ModalityWorklist(self.orders, self.access)
        self.templates = TemplateService(SqlTemplates(self.engine), self.audit)
        self.leadership = Leadership(SqlLeases(self.engine), self.settings.resolved_advertise_url)
        # A process that starts or stops deciding starts from what the database holds.
        self.leadership.on_gain.append(self.reading.reset)
        self.leadership.on_loss.append(self.reading.reset)
        self.results, self.outbox, self.deliveries = _results(self)
        self.reports = ReportService(
            SqlReports(self.engine),
            StudyReportFacts(self.archive, self.index, self.orders),
            self.templates,
            self.reading,
            self.auth,
            self.audit,
            self.deliveries,
        )
        self.publication = ReportPublication(
            self.reports,
            self.orders,
            lambda fid: f.name if (f := self.index.facility_by_id(fid)) else None,
            lambda name: f.id if (f := self.index.facility_by_name(name)) else None,
        )
        self.runtime = Runtime(loops_of(self))

    # -- the platform's life -----------------------------------------------------------
    def open(self) -> Platform:
        """Bring the data up (idempotent): migrate the schema, mark this process as
        running, recover what an unclean stop of the previous run lost."""
        if self._opened:
            return self
        migrate(self.engine)
        if self.keys is not None:
            self.keys.check_master()
        run = claim(self.settings.data_dir)
        self._opened = True
        if run.unclean_since is not None and not run.shared:
            # A crash may have lost renames (fsynced temporary files remain) and,
            # with SQLite, the index's last commits: catch up from the blobs.
            recover_incomplete(self.index, self.blobs, self.blobs.incomplete())
            if sqlite_path(self.settings.resolved_database_url) is not None:
                since = run.unclean_since - SLACK_SECONDS
                recover(self.index, self.blobs, self.blobs.written_since(since))
        return self

    def start(self, only: frozenset[str] | None = None) -> Platform:
        """Start the background loops (``only``: those named), after opening. With the
        ``leadership`` loop, this process decides the worklist when it holds the lease."""
        self.open()
        if only is None or "leadership" in only:
            self.leadership.started = True
            if self.leadership.renew():
                self.reading.start()  # the worklist rebuilt from its open entries
        self.runtime.start(only)
        return self

    def stop(self) -> None:
        """Stop the background loops; what they were doing is finished first. The
        lease is given up, so another process may decide at once."""
        self.runtime.stop()
        self.outbox.close()
        self.leadership.step_down()

    def close(self) -> None:
        """Stop, sync what is pending, release the data dir (a clean stop). Once."""
        if self._closed:
            return
        self._closed = True
        self.stop()
        if self._opened:
            self.syncer.sync()
        self.blobs.close()
        self.engine.dispose()
        if self._opened:
            release(self.settings.data_dir)

    def __enter__(self) -> Platform:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def default_facility(self) -> Facility:
        name = self.settings.default_facility
        facility = self.index.facility_by_name(name)
        if facility is None:
            try:
                facility = self.index.add_facility(name)
            except Exception:  # created concurrently
                facility = self.index.facility_by_name(name)
        assert facility is not None
        return facility

    @property
    def ready(self) -> bool:
        return bool(self.listeners) and all(self.listeners.values())


def open_platform(settings: Settings | None = None) -> Platform:
    """A platform built and opened (its schema and data ready), without loops: use it
    as ``with open_platform(settings) as platform:`` so that it is closed."""
    return bootstrap(settings).open()


def bootstrap(settings: Settings | None = None) -> Platform:
    """Build the platform from its settings; nothing runs until it is opened."""
    settings = settings or Settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_database_url
    engine = make_engine(url)
    index = SqlIndex(engine)
    facilities = _cached_facilities(index)
    keys = _facility_keys(settings, engine)
    blobs = _blob_store(settings, facilities, keys)
    database = sqlite_path(url)
    syncer = IndexSyncer(engine if database else None, settings.data_dir, blobs.sync_directories)
    # One transaction per use case over the stores it writes (services/ports.UnitOfWork).
    unit = SqlUnitOfWork(engine)
    audit = AuditService(SqlAuditRepository(engine), unit_of_work=unit)
    archive = Archive(index, blobs)
    identity = SqlIdentity(engine)
    policy = AuthPolicy(
        token_lifetime=timedelta(minutes=settings.token_minutes),
        session_idle=timedelta(minutes=settings.session_idle_minutes),
        mfa_roles=frozenset(Role(r) for r in settings.mfa_roles),
    )
    secret = load_or_create_secret(settings.data_dir, settings.secret_key)
    auth = AuthService(identity, secret, audit, policy)
    access = AccessLog(audit, lambda fid: f.name if (f := facilities(fid)) else str(fid))
    order_store = SqlOrders(engine)  # orders, stations, slots and performed steps
    orders = OrderService(
        order_store,
        audit,
        load_catalogue(settings.procedures_file),
        lambda fid: f.name if (f := facilities(fid)) else str(fid),
        access=access,
        unit_of_work=unit,
    )
    reading = ReadingService(
        SqlReading(engine),
        settings.rules_file,
        session_idle=policy.session_idle,
        session_max=policy.session_max,
        audit=audit,
        facility_name=lambda fid: f.name if (f := facilities(fid)) else str(fid),
        unit_of_work=unit,
    )
    reconciler = Reconciler(
        SqlReadingStates(engine),
        orders,
        facilities,
        reading.deadline,  # the rules in force, reloaded when the rules file changes
        ReadinessPolicy(
            stable_for=timedelta(seconds=settings.stable_seconds),
            hold_limit=timedelta(minutes=settings.hold_minutes),
        ),
        queue=reading,
        unit_of_work=unit,
    )
    oidc = None
    if settings.oidc_issuer and settings.oidc_client_id:
        oidc = OidcProvider(
            settings.oidc_issuer,
            settings.oidc_client_id,
            settings.oidc_client_secret,
            settings.oidc_scopes,
        )
    return Platform(
        settings,
        engine,
        index,
        blobs,
        archive,
        audit,
        identity,
        auth,
        access,
        orders,
        reconciler,
        reading=reading,
        mpps=MppsService(order_store, orders, audit, unit_of_work=unit),
        syncer=syncer,
        oidc=oidc,
        keys=keys,
    )


def _results(platform: Platform) -> tuple[ResultsService, OutboxWorker, Deliveries]:
    """The outbox over the index database, its worker storing the report's SR and PDF
    into the study and sending HL7 over MLLP, FHIR over HTTP and DICOM by C-STORE,
    and what a signature queues (the archive step for an archived study, an ORU, a
    DiagnosticReport and a C-STORE for facilities with those endpoints)."""
    settings, engine = platform.settings, platform.engine
    endpoints, outbox = SqlEndpoints(engine), SqlOutbox(engine)

    def name(facility_id: int) -> str | None:
        facility = platform.index.facility_by_id(facility_id)
        return facility.name if facility is not None else None

    tls = None
    if settings.results_tls_ca or (settings.tls_cert and settings.tls_key):
        tls = client_context(settings.results_tls_ca, settings.tls_cert, settings.tls_key)
    sender = MllpSender(settings.results_connect_seconds, settings.results_answer_seconds, tls)
    # The report's DICOM SR and PDF, made once per signature and kept in its study.
    objects = ReportObjects(
        platform.studies,
        lambda report_id: platform.reports.store.get(report_id),
        platform.templates.get,
        platform.index.facility_by_id,
        platform.orders.by_accession,
        station=settings.dicom_aet,
    )
    worker = OutboxWorker(
        outbox,
        WithArchive(endpoints),  # every facility has the local archive step
        {
            Channel.HL7: sender,
            Channel.FHIR: FhirSender(
                settings.results_connect_seconds, settings.results_answer_seconds, tls
            ),
            Channel.ARCHIVE: ArchiveStep(objects),
            Channel.DICOM: CStoreSender(
                objects,
                settings.dicom_aet,
                settings.results_connect_seconds,
                settings.results_answer_seconds,
            ),
        },
        platform.audit,
        RetryPolicy(
            timedelta(seconds=settings.results_retry_first_seconds),
            timedelta(seconds=settings.results_retry_longest_seconds),
            settings.results_refusals,
            timedelta(hours=settings.results_give_up_hours),
        ),
        # A claim outlives the longest send: connecting, then waiting for the answer.
        lease=timedelta(
            seconds=settings.results_connect_seconds + settings.results_answer_seconds + 10
        ),
    )
    results = ResultsService(outbox, endpoints, platform.audit, name, wake=worker.wake)
    hl7 = hl7_deliveries(
        endpoints,
        platform.templates.get,
        lambda fid: Parties(
            settings.hl7_application, settings.hl7_facility, "", name(fid) or str(fid)
        ),
        platform.orders.by_accession,
    )
    fhir = fhir_deliveries(
        endpoints,
        lambda report, facts: platform.publication.for_delivery(report, facts),
        settings.resolved_advertise_url.rstrip("/") + "/fhir/r4",
    )

    def in_archive(facility_id: int, study_uid: str) -> bool:
        return platform.index.study_facilities([study_uid]).get(study_uid) == facility_id

    deliveries = combined(hl7, fhir, dicom_deliveries(endpoints, in_archive))
    return results, worker, deliveries


def _facility_keys(settings: Settings, engine: Engine) -> FacilityKeys | None:
    master = load_master_key(settings.master_key, settings.master_key_file)
    return FacilityKeys(engine, master) if master is not None else None


def _blob_store(
    settings: Settings,
    facilities: Callable[[int], Facility | None],
    keys: FacilityKeys | None,
) -> FileBlobStore | ProtectedBlobStore:
    """Plain files, or files per data region and/or sealed with per-facility keys."""
    # Spare temporary files wait in incoming/ so no inode is created while a peer waits.
    default = FileBlobStore(
        settings.blob_dir, fsync=settings.fsync, spare_dir=settings.data_dir / "incoming"
    )
    if keys is None and not settings.storage_regions:
        return default
    regions = {
        name: FileBlobStore(root, fsync=settings.fsync)
        for name, root in settings.storage_regions.items()
    }
    return ProtectedBlobStore(
        default, regions, lambda fid: f.region if (f := facilities(fid)) else "", keys
    )


def _cached_facilities(index: SqlIndex) -> Callable[[int], Facility | None]:
    """Facility by id, re-read every 10 s (a changed region applies to new objects soon)."""
    cache: dict[int, tuple[float, Facility | None]] = {}

    def facility(facility_id: int) -> Facility | None:
        hit = cache.get(facility_id)
        if hit is None or time.monotonic() - hit[0] > 10.0:
            hit = (time.monotonic(), index.facility_by_id(facility_id))
            cache[facility_id] = hit
        return hit[1]

    return facility
