"""The platform as its edges see it: services and ports, typed by what they do.

Adapters (DIMSE, MLLP) and the web app are given a :class:`Platform`; they never
import the wiring (``telerad.bootstrap``) nor the storage layer, so they can be
read, and tested, against this contract alone. ``bootstrap.Platform`` is its
one implementation. The edges write no audit record of their own: they hand the
actor and the request's facts to a service, which decides what is recorded
(``tests/unit/test_edges_write_no_audit.py`` keeps it so).
"""

from __future__ import annotations

from typing import Any, Protocol

from telerad.config import Settings
from telerad.domain.model import Facility
from telerad.services.admission import Admission
from telerad.services.archive import Archive
from telerad.services.audit import AuditService
from telerad.services.auth import AuthService
from telerad.services.deid_export import DeidExport
from telerad.services.leadership import Leadership
from telerad.services.messages import Messages
from telerad.services.mpps import MppsService
from telerad.services.mwl import ModalityWorklist
from telerad.services.orders import OrderService
from telerad.services.ports import Index
from telerad.services.reading import ReadingService
from telerad.services.reconcile import Reconciler
from telerad.services.report_publication import ReportPublication
from telerad.services.reports import ReportService
from telerad.services.results import ResultsService
from telerad.services.studies import Studies
from telerad.services.templates import TemplateService


class Platform(Protocol):
    @property
    def settings(self) -> Settings: ...

    @property
    def index(self) -> Index: ...

    @property
    def archive(self) -> Archive: ...

    @property
    def studies(self) -> Studies:
        """Storing, searching and retrieving within the caller's scope, audited."""

    @property
    def deid(self) -> DeidExport: ...

    @property
    def audit(self) -> AuditService:
        """The trail: verified and exported here; records are the services' to write."""

    @property
    def admission(self) -> Admission: ...

    @property
    def auth(self) -> AuthService: ...

    @property
    def orders(self) -> OrderService: ...

    @property
    def messages(self) -> Messages:
        """HL7 v2 messages admitted and their receipts audited."""

    @property
    def mwl(self) -> ModalityWorklist: ...

    @property
    def reconciler(self) -> Reconciler: ...

    @property
    def templates(self) -> TemplateService:
        """Report templates in force, importing them, and which one a study gets."""

    @property
    def reading(self) -> ReadingService: ...

    @property
    def mpps(self) -> MppsService: ...

    @property
    def reports(self) -> ReportService:
        """Reports: written by the radiologist holding the study, signed, delivered."""

    @property
    def publication(self) -> ReportPublication:
        """Signed reports as the facilities' systems read them (FHIR DiagnosticReport)."""

    @property
    def results(self) -> ResultsService:
        """Results endpoints, the outbox and its dead letters, deliveries per report."""

    @property
    def leadership(self) -> Leadership: ...

    @property
    def oidc(self) -> Any:
        """The OpenID Connect provider (``adapters.oidc.OidcProvider``) when configured."""

    @property
    def listeners(self) -> dict[str, bool]:
        """Each listener's name and whether it is up (``/healthz``)."""

    @property
    def ready(self) -> bool: ...

    def default_facility(self) -> Facility: ...
