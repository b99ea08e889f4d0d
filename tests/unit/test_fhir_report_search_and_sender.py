"""DiagnosticReport search parameters (adapters/fhir/report_search.py) and how the FHIR
sender judges a server's answer (adapters/fhir/sender.py), without a network."""

from __future__ import annotations

import json
from datetime import date

import pytest

from telerad.adapters.fhir.report_search import parse_report_search
from telerad.adapters.fhir.sender import judge, outcome_text
from telerad.adapters.fhir.service_request import FhirError
from telerad.domain.outbox import Outcome
from telerad.domain.reports import ReportStatus

OO = json.dumps(
    {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": "invalid", "diagnostics": "unknown patient"},
            {"severity": "error", "code": "required", "details": {"text": "no subject"}},
        ],
    }
)


def test_parameters_become_a_query() -> None:
    parsed = parse_report_search(
        [
            ("subject:identifier", "urn:telerad:patient:North%20Hospital|P-1"),
            ("based-on", "ServiceRequest/55"),
            ("status", "amended"),
            ("date", "ge2026-01"),
            ("date", "lt2027"),
            ("_count", "10"),
            ("_sort", "-date"),  # not understood: ignored, not in the self link
        ]
    )
    q = parsed.query
    assert (q.patient_id, q.facility, q.order_id, q.count) == ("P-1", "North Hospital", 55, 10)
    assert q.statuses == {ReportStatus.APPENDED, ReportStatus.CORRECTED}
    assert [(b.op, b.first, b.last) for b in q.dates] == [
        ("ge", date(2026, 1, 1), date(2026, 1, 31)),
        ("lt", date(2027, 1, 1), date(2027, 12, 31)),
    ]
    assert q.dates[0].holds(date(2026, 1, 1)) and not q.dates[1].holds(date(2027, 1, 1))
    assert [n for n, _ in parsed.used] == [
        "subject:identifier", "based-on", "status", "date", "date", "_count"
    ]  # fmt: skip
    assert not q.nothing


@pytest.mark.parametrize(
    "params",
    [
        [("subject:identifier", "urn:other|P-1")],
        [("based-on", "Encounter/5")],
        [("based-on", "ServiceRequest/abc")],
        [("status", "registered")],
        [("status", "final"), ("status", "preliminary")],
    ],
)
def test_parameters_that_can_match_nothing(params: list[tuple[str, str]]) -> None:
    assert parse_report_search(params).query.nothing


@pytest.mark.parametrize(
    "params", [[("status", "done")], [("date", "2026/01/02")], [("date", "2026-02-30")],
               [("_count", "x")], [("_offset", "-1")]],
)  # fmt: skip
def test_bad_parameters_are_400(params: list[tuple[str, str]]) -> None:
    with pytest.raises(FhirError) as caught:
        parse_report_search(params)
    assert caught.value.status == 400


def test_answers_are_judged() -> None:
    assert judge(201, "{}", "http://x/DiagnosticReport/telerad-1/_history/1").outcome is (
        Outcome.ACCEPTED
    )
    refused = judge(422, OO)
    assert refused.outcome is Outcome.REFUSED
    assert refused.detail == "HTTP 422: unknown patient; no subject" and refused.answer == OO
    for later in (408, 429, 500, 503, 302):
        assert judge(later, OO).outcome is Outcome.FAILED, later
    assert judge(400, "<html>bad</html>").detail == "HTTP 400"
    assert outcome_text('{"resourceType": "Patient"}') == "" and outcome_text("[1") == ""
