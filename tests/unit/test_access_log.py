"""The request log line: names of query parameters, never their values."""

from __future__ import annotations

from telerad.domain.identity import Permission, Principal, Role
from telerad.web.access_log import masked_query, request_line


def test_query_values_are_dropped_and_odd_names_masked() -> None:
    assert masked_query(b"") == ""
    assert masked_query(b"PatientName=DOE%5EJANE*&limit=25") == "PatientName=…&limit=…"
    assert masked_query(b"accession=ACC1&&includefield=00100010") == "accession=…&includefield=…"
    # A bare value typed as a key ("/?DOE^JANE") is data, not a name.
    assert masked_query(b"DOE%5EJANE%20M") == "…"


def test_the_line_names_method_path_status_time_and_who() -> None:
    who = Principal("dr.lee", Role.RADIOLOGIST, None, frozenset({Permission.READ}))
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/dicom-web/studies",
        "query_string": b"PatientID=12345",
        "client": ("10.0.0.7", 5123),
        "state": {"principal": who},
    }
    line = request_line(scope, 200, 0.0123)
    assert line == "GET /dicom-web/studies?PatientID=… 200 12.3 ms dr.lee 10.0.0.7"
    assert "12345" not in line
    anonymous = {**scope, "query_string": b"", "state": {}, "client": None}
    assert request_line(anonymous, 401, 0.001) == "GET /dicom-web/studies 401 1.0 ms - -"
