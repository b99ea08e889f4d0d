"""Audit trail wire formats: DICOM audit message XML, FHIR AuditEvent, RFC 5424 syslog."""
