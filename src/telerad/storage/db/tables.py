"""The index schema (SQLAlchemy Core). Changes go through Alembic migrations."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)

metadata = MetaData()

facility = Table(
    "facility",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(128), nullable=False, unique=True),
    Column("ae_title", String(16), unique=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
    # Where the facility's AE calls from (address, network or host name; empty: anywhere).
    Column("host", String(255), nullable=False, server_default=""),
    Column("country", String(2), nullable=False, server_default=""),
    Column("state", String(16), nullable=False, server_default=""),
    Column("region", String(32), nullable=False, server_default=""),
    # SHA-256 of the TLS client certificate its AE must present (empty: not pinned).
    Column("cert_sha256", String(64), nullable=False, server_default=""),
)

node = Table(
    "node",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("ae_title", String(16), nullable=False, unique=True),
    Column("host", String(255), nullable=False),
    Column("port", Integer, nullable=False),
    Column("facility_id", ForeignKey("facility.id", ondelete="SET NULL")),
    Column("cert_sha256", String(64), nullable=False, server_default=""),
)

patient = Table(
    "patient",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("facility_id", ForeignKey("facility.id"), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("patient_name", String(324), nullable=False, default=""),
    Column("patient_name_norm", String(324), nullable=False, default=""),
    Column("birth_date", String(8), nullable=False, default=""),
    Column("sex", String(16), nullable=False, default=""),
    Column("num_studies", Integer, nullable=False, default=0),
    UniqueConstraint("facility_id", "patient_id", name="uq_patient_facility_pid"),
)
Index("ix_patient_pid", patient.c.patient_id)
Index("ix_patient_name_norm", patient.c.patient_name_norm)

study = Table(
    "study",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("facility_id", ForeignKey("facility.id"), nullable=False),
    Column("patient_pk", ForeignKey("patient.id"), nullable=False),
    Column("study_instance_uid", String(64), nullable=False, unique=True),
    Column("study_date", String(8), nullable=False, default=""),
    Column("study_time", String(16), nullable=False, default=""),
    Column("accession_number", String(16), nullable=False, default=""),
    Column("study_id", String(16), nullable=False, default=""),
    Column("study_description", String(64), nullable=False, default=""),
    Column("referring_physician_name", String(324), nullable=False, default=""),
    Column("institution_name", String(64), nullable=False, default=""),
    Column("modalities", String(128), nullable=False, default=""),
    Column("num_series", Integer, nullable=False, default=0),
    Column("num_instances", Integer, nullable=False, default=0),
    Column("specific_character_set", String(128), nullable=False, default=""),
    Column("updated_at", DateTime(timezone=True), server_default=func.now()),
)
Index("ix_study_date", study.c.study_date)
Index("ix_study_accession", study.c.accession_number)
Index("ix_study_patient", study.c.patient_pk)
Index("ix_study_facility_date", study.c.facility_id, study.c.study_date)

series = Table(
    "series",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_pk", ForeignKey("study.id"), nullable=False),
    Column("series_instance_uid", String(64), nullable=False, unique=True),
    Column("modality", String(16), nullable=False, default=""),
    Column("series_number", Integer),
    Column("series_description", String(64), nullable=False, default=""),
    Column("series_date", String(8), nullable=False, default=""),
    Column("series_time", String(16), nullable=False, default=""),
    Column("body_part", String(16), nullable=False, default=""),
    Column("num_instances", Integer, nullable=False, default=0),
)
Index("ix_series_study", series.c.study_pk)

instance = Table(
    "instance",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("series_pk", ForeignKey("series.id"), nullable=False),
    Column("sop_instance_uid", String(64), nullable=False, unique=True),
    Column("sop_class_uid", String(64), nullable=False),
    Column("transfer_syntax_uid", String(64), nullable=False),
    Column("instance_number", Integer),
    Column("rows", Integer),
    Column("columns", Integer),
    Column("number_of_frames", Integer),
    Column("blob_key", String(255), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
    # Who made it (domain.modalities.InstanceOrigin): a facility, or the reading network.
    Column("origin", String(16), nullable=False, server_default="acquisition"),
)
Index("ix_instance_series", instance.c.series_pk, instance.c.instance_number)

# DICOM JSON of an instance without bulk data, filled on first WADO-RS metadata request.
instance_metadata = Table(
    "instance_metadata",
    metadata,
    Column("instance_pk", ForeignKey("instance.id", ondelete="CASCADE"), primary_key=True),
    Column("json", Text, nullable=False),
)

# The audit trail: append-only (triggers refuse UPDATE and DELETE), hash-chained
# (telerad.domain.audit). ``time`` is canonical UTC text, so it sorts as it hashes.
audit_record = Table(
    "audit_record",
    metadata,
    Column("sequence", BigInteger, primary_key=True, autoincrement=False),
    Column("time", String(32), nullable=False),
    Column("event_id", String(16), nullable=False),
    Column("action", String(1), nullable=False),
    Column("outcome", Integer, nullable=False),
    Column("actor_id", String(255), nullable=False),
    Column("actor_role", String(64), nullable=False),
    Column("actor_is_user", Integer, nullable=False),
    Column("source_address", String(255), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("study_uid", String(64), nullable=False),
    Column("facility", String(128), nullable=False),
    Column("detail", Text, nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_audit_record_time", audit_record.c.time)

# -- people -------------------------------------------------------------------------
app_user = Table(
    "app_user",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("username", String(128), nullable=False, unique=True),
    Column("role", String(32), nullable=False),
    Column("facility_id", ForeignKey("facility.id")),
    Column("display_name", String(255), nullable=False, server_default=""),
    Column("password_hash", String(255)),
    Column("totp_secret", String(255)),  # encrypted (Fernet, platform secret)
    Column("failed_logins", Integer, nullable=False, server_default="0"),
    Column("locked_until", DateTime(timezone=True)),
    Column("disabled", Integer, nullable=False, server_default="0"),
    # Bumped on password change, disabling or "revoke": older tokens stop working.
    Column("token_version", Integer, nullable=False, server_default="0"),
    Column("oidc_subject", String(255), unique=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
    # When a bearer token of the account was last used (noted at most every 30 s).
    Column("token_seen_at", DateTime(timezone=True)),
)

# Jurisdictions a radiologist is licensed in (ISO 3166: "US-CA", "GB", "DE"…).
licence = Table(
    "licence",
    metadata,
    Column("user_id", ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    Column("jurisdiction", String(16), primary_key=True),
)

# Facilities where a radiologist is credentialed to read.
privilege = Table(
    "privilege",
    metadata,
    Column("user_id", ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    Column("facility_id", ForeignKey("facility.id", ondelete="CASCADE"), primary_key=True),
)

# Browser sessions; the cookie holds a random token, the table its SHA-256.
web_session = Table(
    "web_session",
    metadata,
    Column("token_sha256", String(64), primary_key=True),
    Column("user_id", ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("auth_time", DateTime(timezone=True), nullable=False),
    Column("source_address", String(255), nullable=False, server_default=""),
)

# Break-glass: time-limited access to one study beyond a person's scope, with a reason.
break_glass = Table(
    "break_glass",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("study_instance_uid", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("granted_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
)
Index("ix_break_glass_user", break_glass.c.user_id, break_glass.c.expires_at)

# Encryption at rest: each facility's data key, wrapped (RFC 3394) by the master key.
facility_key = Table(
    "facility_key",
    metadata,
    Column("facility_id", ForeignKey("facility.id", ondelete="CASCADE"), primary_key=True),
    # Which master key wrapped it (first 16 hex digits of its SHA-256).
    Column("master_key_id", String(16), nullable=False),
    Column("wrapped_key", String(128), nullable=False),  # base64
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
)

# -- orders (RIS) ----------------------------------------------------------------------
# "order" is an SQL keyword: the table is the imaging order.
imaging_order = Table(
    "imaging_order",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("facility_id", ForeignKey("facility.id"), nullable=False),
    Column("accession_number", String(16), nullable=False),
    Column("patient_id", String(64), nullable=False),
    Column("patient_name", String(324), nullable=False, server_default=""),
    Column("birth_date", String(8), nullable=False, server_default=""),
    Column("sex", String(16), nullable=False, server_default=""),
    Column("procedure_code", String(64), nullable=False),
    Column("procedure_description", String(128), nullable=False, server_default=""),
    Column("coding_scheme", String(16), nullable=False, server_default=""),
    Column("modality", String(16), nullable=False, server_default=""),
    Column("body_part", String(16), nullable=False, server_default=""),
    Column("rvu", Float, nullable=False, server_default="1.0"),
    Column("subspecialty", String(32), nullable=False, server_default=""),
    Column("priority", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("placer_order_number", String(64), nullable=False, server_default=""),
    Column("filler_order_number", String(64), nullable=False, server_default=""),
    Column("reason", Text, nullable=False, server_default=""),
    Column("ordering_physician", String(324), nullable=False, server_default=""),
    Column("scheduled_at", DateTime(timezone=True)),
    Column("station_ae", String(16), nullable=False, server_default=""),
    Column("requested_procedure_id", String(16), nullable=False, server_default=""),
    Column("requested_study_uid", String(64), nullable=False, server_default=""),
    Column("study_instance_uid", String(64), nullable=False, server_default=""),
    Column("mpps_status", String(16), nullable=False, server_default=""),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("facility_id", "accession_number", name="uq_order_facility_accession"),
)
Index("ix_order_study", imaging_order.c.study_instance_uid)
Index("ix_order_patient", imaging_order.c.facility_id, imaging_order.c.patient_id)
Index("ix_order_status_scheduled", imaging_order.c.status, imaging_order.c.scheduled_at)

# What happened to an order, oldest first: its history as staff see it.
order_event = Table(
    "order_event",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("order_id", ForeignKey("imaging_order.id", ondelete="CASCADE"), nullable=False),
    Column("time", DateTime(timezone=True), nullable=False),
    Column("event", String(32), nullable=False),
    Column("source", String(32), nullable=False),  # HL7, FHIR, REST, MPPS, reconciliation
    Column("detail", String(255), nullable=False, server_default=""),
)
Index("ix_order_event_order", order_event.c.order_id, order_event.c.id)

# Scheduling: a facility's modalities (scheduled stations) and their procedure slots.
station = Table(
    "station",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("facility_id", ForeignKey("facility.id"), nullable=False),
    Column("ae_title", String(16), nullable=False, unique=True),
    Column("modality", String(16), nullable=False),
    Column("name", String(64), nullable=False, server_default=""),
)

slot = Table(
    "slot",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("station_id", ForeignKey("station.id", ondelete="CASCADE"), nullable=False),
    Column("start", DateTime(timezone=True), nullable=False),
    Column("end", DateTime(timezone=True), nullable=False),
    # The appointment: the order booked into this slot (none: free).
    Column("order_id", ForeignKey("imaging_order.id", ondelete="SET NULL"), unique=True),
    UniqueConstraint("station_id", "start", name="uq_slot_station_start"),
)

# Modality Performed Procedure Steps as the modalities reported them.
mpps = Table(
    "mpps",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("sop_instance_uid", String(64), nullable=False, unique=True),
    Column("facility_id", ForeignKey("facility.id"), nullable=False),
    Column("order_id", ForeignKey("imaging_order.id", ondelete="SET NULL")),
    Column("status", String(16), nullable=False),  # IN PROGRESS, COMPLETED, DISCONTINUED
    Column("study_instance_uid", String(64), nullable=False, server_default=""),
    Column("json", Text, nullable=False),  # the step's attributes, DICOM JSON
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
Index("ix_mpps_study", mpps.c.study_instance_uid)

# Reconciliation and readiness: each study's order and whether it can be read.
reading_study = Table(
    "reading_study",
    metadata,
    Column("study_pk", ForeignKey("study.id", ondelete="CASCADE"), primary_key=True),
    Column("facility_id", ForeignKey("facility.id"), nullable=False),
    Column("order_id", ForeignKey("imaging_order.id", ondelete="SET NULL")),
    Column("matched_by", String(32), nullable=False, server_default=""),
    Column("state", String(16), nullable=False),  # arriving, unmatched, incomplete, ready
    Column("problems", Text, nullable=False, server_default="[]"),  # JSON list of reasons
    Column("instances", Integer, nullable=False, server_default="0"),
    # Acquired images among them (not SR, KOS, PR…, nor what the reading network made).
    Column("acquired", Integer, nullable=False, server_default="0"),
    Column("last_change", DateTime(timezone=True), nullable=False),
    Column("ready_at", DateTime(timezone=True)),
    # The tier a person chose when sending it to reading without an order.
    Column("released_as", String(16), nullable=False, server_default=""),
)
Index("ix_reading_study_state", reading_study.c.state, reading_study.c.facility_id)

# -- the reading worklist (migration 0006) ----------------------------------------------
reader_profile = Table(
    "reader_profile",
    metadata,
    Column("user_id", ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True),
    Column("subspecialties", Text, nullable=False, server_default=""),  # space-separated
    Column("modalities", Text, nullable=False, server_default=""),
    Column("read_kinds", String(32), nullable=False, server_default="final preliminary"),
    Column("rvu_per_hour", Float, nullable=False, server_default="10.0"),
    Column("queue_cap_rvu", Float),
    Column("tz", String(64), nullable=False, server_default="UTC"),
    Column("updated_at", DateTime(timezone=True), nullable=False),
)
reader_shift = Table(
    "reader_shift",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("user_id", ForeignKey("app_user.id", ondelete="CASCADE"), nullable=False),
    Column("days", String(16), nullable=False, server_default=""),  # "0 1 2 3 4": weekly
    Column("start_time", String(5), nullable=False, server_default=""),  # HH:MM local
    Column("end_time", String(5), nullable=False, server_default=""),
    Column("starts_at", DateTime(timezone=True)),  # one-off shift (UTC)
    Column("ends_at", DateTime(timezone=True)),
)
Index("ix_reader_shift_user", reader_shift.c.user_id)
worklist_entry = Table(
    "worklist_entry",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("study_uid", String(64), nullable=False),
    Column("facility_id", ForeignKey("facility.id"), nullable=False),
    Column("jurisdiction", String(16), nullable=False),
    Column("modality", String(16), nullable=False),
    Column("body_part", String(16), nullable=False, server_default=""),
    Column("subspecialty", String(32), nullable=False, server_default=""),
    Column("priority", String(16), nullable=False),
    Column("read_kind", String(16), nullable=False),
    Column("rvu", Float, nullable=False),
    Column("patient_key", String(160), nullable=False, server_default=""),
    Column("prior_readers", Text, nullable=False, server_default=""),  # space-separated ids
    Column("ready_at", DateTime(timezone=True), nullable=False),
    Column("deadline", DateTime(timezone=True), nullable=False),
    Column("state", String(16), nullable=False),  # open, completed, withdrawn
    Column("assigned_to", Integer),
    Column("assigned_at", DateTime(timezone=True)),
    Column("first_assigned_at", DateTime(timezone=True)),
    Column("claimed_at", DateTime(timezone=True)),
    Column("completed_at", DateTime(timezone=True)),
    Column("completed_by", Integer),
    Column("breached_at", DateTime(timezone=True)),
    Column("why", Text, nullable=False, server_default=""),  # the last assignment's explanation
    Column("closed_at", DateTime(timezone=True)),
)
Index("ix_worklist_entry_state", worklist_entry.c.state, worklist_entry.c.study_uid)
Index("ix_worklist_entry_done", worklist_entry.c.completed_at, worklist_entry.c.facility_id)
worklist_event = Table(
    "worklist_event",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entry_id", ForeignKey("worklist_entry.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # assigned, claimed, reassigned, completed...
    Column("at", DateTime(timezone=True), nullable=False),
    Column("reader_id", Integer),
    Column("to_reader", Integer),
    Column("detail", Text, nullable=False, server_default=""),  # explanation, reason, action
)
Index("ix_worklist_event_entry", worklist_event.c.entry_id, worklist_event.c.id)
# Alerts for the supervisor (migration 0007): breach risk, breached, no reader, reader away.
worklist_alert = Table(
    "worklist_alert",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("entry_id", ForeignKey("worklist_entry.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("raised_at", DateTime(timezone=True), nullable=False),
    Column("detail", Text, nullable=False, server_default=""),
    Column("acknowledged_at", DateTime(timezone=True)),
    Column("acknowledged_by", Integer),
    Column("cleared_at", DateTime(timezone=True)),  # its cause went (read, assigned, withdrawn)
)
Index("ix_worklist_alert_entry", worklist_alert.c.entry_id, worklist_alert.c.kind)
Index("ix_worklist_alert_live", worklist_alert.c.cleared_at)

# Which process holds a platform-wide duty, until when (migration 0008).
runtime_lease = Table(
    "runtime_lease",
    metadata,
    Column("name", String(32), primary_key=True),  # "reading": the worklist and reconciliation
    Column("holder", String(64), nullable=False),  # a process's id (host, pid, start)
    Column("address", String(255), nullable=False, server_default=""),  # where it serves HTTP
    Column("expires_at", DateTime(timezone=True), nullable=False),
)

# -- reporting (migration 0009) ---------------------------------------------------------
# Templates an administrator imported (the shipped ones are package data); the body
# is the template as JSON (domain/template_codec.py), kept with the file it came from.
report_template = Table(
    "report_template",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("version", String(16), nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("source_format", String(8), nullable=False),  # mrrt, toml, json
    Column("source", Text, nullable=False, server_default=""),
    Column("imported_at", DateTime(timezone=True), nullable=False),
    Column("imported_by", String(128), nullable=False, server_default=""),
)
# A study's report (one per accession): its current status; the versions keep the rest.
report = Table(
    "report",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("facility_id", ForeignKey("facility.id"), nullable=False),
    Column("study_instance_uid", String(64), nullable=False),
    Column("accession_number", String(16), nullable=False, server_default=""),
    Column("patient_id", String(64), nullable=False, server_default=""),
    Column("status", String(16), nullable=False),
    Column("version", Integer, nullable=False),  # the current version's number
    Column("difference", String(8)),  # final vs preliminary: none, minor, major
    Column("preliminary_by", Integer),
    Column("final_by", Integer),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("signed_at", DateTime(timezone=True)),  # the newest signature
    UniqueConstraint("study_instance_uid", "accession_number", name="uq_report_study_accession"),
)
Index("ix_report_status", report.c.status, report.c.updated_at)
Index("ix_report_patient", report.c.facility_id, report.c.patient_id)
# Every state of every report, never updated: content and overrides as JSON.
report_version = Table(
    "report_version",
    metadata,
    Column("report_id", ForeignKey("report.id", ondelete="CASCADE"), primary_key=True),
    Column("number", Integer, primary_key=True),
    Column("status", String(16), nullable=False),
    Column("event", String(24), nullable=False),
    Column("content", Text, nullable=False),
    Column("author_id", Integer, nullable=False),
    Column("author", String(324), nullable=False, server_default=""),
    Column("made_at", DateTime(timezone=True), nullable=False),
    Column("signed", Integer, nullable=False, server_default="0"),
    Column("addendum", Text, nullable=False, server_default=""),
    Column("reason", Text, nullable=False, server_default=""),
    Column("overrides", Text, nullable=False, server_default=""),
)
# Where a facility takes its results: HL7 MLLP, a FHIR server, its PACS (C-STORE).
results_endpoint = Table(
    "results_endpoint",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("facility_id", ForeignKey("facility.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(8), nullable=False),  # hl7, fhir, dicom
    Column("address", String(255), nullable=False),  # host:port, a base URL, AE@host:port
    Column("tls", Integer, nullable=False, server_default="0"),
    UniqueConstraint("facility_id", "kind", name="uq_results_endpoint_kind"),
)
# The durable outbox: what is to be delivered where, in order per facility and channel.
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("facility_id", ForeignKey("facility.id"), nullable=False),
    Column("report_id", ForeignKey("report.id"), nullable=False),
    Column("report_version", Integer, nullable=False),
    Column("channel", String(8), nullable=False),  # hl7, fhir, dicom
    Column("message_id", String(64), nullable=False, unique=True),  # MSH-10, a UID, ...
    Column("payload", Text, nullable=False),
    Column("state", String(8), nullable=False),  # pending, sent, dead
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_at", DateTime(timezone=True), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("sent_at", DateTime(timezone=True)),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("answer", Text, nullable=False, server_default=""),  # the peer's last answer
    Column("refusals", Integer, nullable=False, server_default="0"),  # attempts refused
    Column("queued_at", DateTime(timezone=True)),  # retried by an administrator (NULL: created)
    Column("claimed_until", DateTime(timezone=True)),  # being sent by a worker until then
    Column("claim", String(32)),  # the token of that worker's claim
    Column("destination", String(255), nullable=False, server_default=""),  # the last try's
)
Index("ix_outbox_due", outbox.c.state, outbox.c.facility_id, outbox.c.channel, outbox.c.id)
Index("ix_outbox_report", outbox.c.report_id)
# Every delivery attempt of an outbox message: when, where, what came of it.
outbox_attempt = Table(
    "outbox_attempt",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("outbox_id", ForeignKey("outbox.id", ondelete="CASCADE"), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("destination", String(255), nullable=False, server_default=""),
    Column("outcome", String(8), nullable=False),  # accepted, refused, failed
    Column("detail", Text, nullable=False, server_default=""),
    Column("answer", Text, nullable=False, server_default=""),
)
Index("ix_outbox_attempt_message", outbox_attempt.c.outbox_id, outbox_attempt.c.id)
