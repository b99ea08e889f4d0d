"""The archive's information model: Facility → Patient → Study → Series → Instance.

Every instance belongs to exactly one facility (the tenant). Patients are
facility-scoped: the same PatientID at two facilities is two patients.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Level(enum.StrEnum):
    """Query/Retrieve levels, named as in PS3.4 C.3."""

    PATIENT = "PATIENT"
    STUDY = "STUDY"
    SERIES = "SERIES"
    IMAGE = "IMAGE"


@dataclass(frozen=True)
class Facility:
    """A tenant: a hospital, clinic or diagnostic center that sends studies."""

    id: int
    name: str
    ae_title: str | None = None
    #: Where its AE calls from: an address, a network (CIDR) or a host name; "" = anywhere.
    host: str = ""
    country: str = ""  # ISO 3166-1 alpha-2
    state: str = ""  # ISO 3166-2 subdivision code without the country ("CA", "BY")
    region: str = ""  # data region: where its objects are kept
    #: SHA-256 (hex) of the TLS client certificate its AE must present; "" = not pinned.
    cert_sha256: str = ""

    @property
    def jurisdiction(self) -> str:
        """Where a radiologist must be licensed to read its studies ("US-CA", "GB")."""
        return f"{self.country}-{self.state}" if self.state else self.country


@dataclass(frozen=True)
class Node:
    """A remote DICOM application entity the archive may send to (C-MOVE destination)."""

    ae_title: str
    host: str
    port: int
    facility_id: int | None = None
    id: int | None = None
    cert_sha256: str = ""


@dataclass
class InstanceHeader:
    """What the index keeps of one instance, read from its header.

    Attribute names are DICOM keywords so that adapters can map them 1:1.
    """

    StudyInstanceUID: str
    SeriesInstanceUID: str
    SOPInstanceUID: str
    SOPClassUID: str
    TransferSyntaxUID: str
    PatientID: str = ""
    PatientName: str = ""
    PatientBirthDate: str = ""
    PatientSex: str = ""
    StudyDate: str = ""
    StudyTime: str = ""
    AccessionNumber: str = ""
    StudyID: str = ""
    StudyDescription: str = ""
    ReferringPhysicianName: str = ""
    InstitutionName: str = ""
    Modality: str = ""
    SeriesNumber: int | None = None
    SeriesDescription: str = ""
    SeriesDate: str = ""
    SeriesTime: str = ""
    BodyPartExamined: str = ""
    InstanceNumber: int | None = None
    Rows: int | None = None
    Columns: int | None = None
    NumberOfFrames: int | None = None
    SpecificCharacterSet: str = ""
    #: Not from the header: who made it (:class:`~telerad.domain.modalities.InstanceOrigin`).
    origin: str = "acquisition"


@dataclass(frozen=True)
class StoredObject:
    """Where and how an instance's bytes are kept."""

    key: str
    size: int
    sha256: str


class StoreOutcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"  # identical bytes already kept: success, no second copy
    CONFLICT = "conflict"  # a different object already holds this SOP Instance UID
    REJECTED = "rejected"  # invalid input


@dataclass(frozen=True)
class StoreResult:
    outcome: StoreOutcome
    sop_instance_uid: str | None = None
    sop_class_uid: str | None = None
    study_instance_uid: str | None = None
    series_instance_uid: str | None = None
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.outcome in (StoreOutcome.STORED, StoreOutcome.DUPLICATE)


@dataclass
class InstanceLocation:
    """An indexed instance and the blob that holds it."""

    facility_id: int
    study_instance_uid: str
    series_instance_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    blob_key: str
    sha256: str
    size: int
    number_of_frames: int | None = None
    instance_number: int | None = None
    extra: dict[str, object] = field(default_factory=dict)


class ConflictingHierarchy(ValueError):
    """An instance whose study or series already belongs elsewhere (another facility or study)."""
