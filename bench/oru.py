"""Results benchmark: from a radiologist's signature to the facility's ACK of the ORU.

``python -m bench.oru [--signatures 200] [--database-url URL] [--json FILE]``

A platform on a temporary data dir (SQLite by default, fsync on as in production;
PostgreSQL with ``--database-url``) with its ``outbox`` loop running as under
``telerad serve``, a facility with an HL7 results endpoint, and that endpoint on
loopback: :class:`bench.facility_endpoint.FacilityEndpoint`, python-hl7's asyncio
MLLP server answering AA. Each signature is the real use case
(``ReportService.sign``: the pre-sign checks, the versioned write with the outbox
row in the same transaction, the audit record) over the real report store, the
shipped CT head template and the platform's deliveries (the ORU built from the
report); only the study's facts, the worklist hold and the re-authentication are
stand-ins (they are not on the way to the facility). The latency of a signature is
from the call to ``sign`` to the moment the endpoint has read the message and
answered it.

Two runs: one signature at a time, each waiting for its ACK (a radiologist signing),
and all of them at once across four facilities (a burst). Targets: median ≤ 1 s and
95th percentile ≤ 2 s for the one-at-a-time run.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

from bench.facility_endpoint import FacilityEndpoint
from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.identity import Permission, Principal, Role
from telerad.domain.outbox import Channel
from telerad.domain.reports import Content
from telerad.services.access_audit import Actor
from telerad.services.outbox import Announcing
from telerad.services.reports import ReportFacts, ReportService, normal
from telerad.storage.db.report_repository import SqlReports

TARGET_MEDIAN, TARGET_P95 = 1.0, 2.0
READER_ID = 7
READER = Principal("bench-reader", Role.RADIOLOGIST, None, frozenset(Permission), user_id=READER_ID)


class Facts:
    """The study's facts, as the archive and the order would give them."""

    def __init__(self) -> None:
        self.by_uid: dict[str, ReportFacts] = {}

    def add(self, uid: str, facility_id: int, n: int) -> None:
        self.by_uid[uid] = ReportFacts(
            study_instance_uid=uid,
            facility_id=facility_id,
            accession_number=f"B{n}",
            patient_id=f"MRN{n}",
            patient_name="Bench^Patient",
            sex="F",
            age=60,
            modality="CT",
            procedure_code="70450",
            procedure="CT head without contrast",
            reason="headache",
            study_date=date.today(),
        )

    def facts(self, who: Principal, study_uid: str) -> ReportFacts | None:
        return self.by_uid.get(study_uid)


class Holding:
    """The worklist as reporting sees it: the bench's reader holds every study."""

    def holder(self, uid: str) -> int | None:
        return READER_ID

    def complete(self, uid: str, reader_id: int, now: datetime | None = None) -> None:
        return None


class Recently:
    """Re-authentication: the reader signed in a moment ago."""

    def sign_in(self, username: str, password: str, code: str | None, source: str = "") -> object:
        return None

    def require_recent(self, principal: Principal) -> None:
        return None


@dataclass
class Run:
    latencies: list[float]  # seconds, sign → ACK
    sign_calls: list[float]  # seconds spent in ReportService.sign

    def summary(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        p95 = ordered[max(0, int(round(0.95 * len(ordered))) - 1)]
        return {
            "signatures": len(ordered),
            "median_s": statistics.median(ordered),
            "p95_s": p95,
            "max_s": ordered[-1],
            "sign_call_median_ms": statistics.median(self.sign_calls) * 1000,
        }


#: False (``--poll-only``): signatures do not wake the worker, which finds them at its
#: next pass, as when another process signed them.
WAKE = True


def _service(platform: Platform, facts: Facts) -> ReportService:
    store = SqlReports(platform.engine)
    return ReportService(
        Announcing(store, platform.outbox.wake) if WAKE else store,
        facts,
        platform.templates,
        Holding(),
        Recently(),
        platform.audit,
        platform.deliveries,
    )


def _draft(service: ReportService, facts: Facts, facility_id: int, n: int) -> tuple[int, int]:
    uid = f"2.25.{facility_id}{n:06d}{int(time.time())}"
    facts.add(uid, facility_id, n)
    report = service.start(READER, uid, "ct-head")
    assert report.id is not None
    content = Content(
        "ct-head",
        report.content.template_version,
        {
            "findings": "No intracranial haemorrhage. Ventricles and sulci normal.",
            "impression": f"Normal CT head ({n}).",
        },
    )
    # Every required field at its normal value, as the "normal" button fills it.
    saved = service.save(
        READER, report.id, normal(service.template_of(report), content), report.version
    )
    return report.id, saved.version


def _wait(endpoint: FacilityEndpoint, count: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while len(endpoint.accepted) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {len(endpoint.accepted)} of {count} ORUs acknowledged")
        time.sleep(0.0005)


def one_at_a_time(platform: Platform, endpoint: FacilityEndpoint, facility: int, n: int) -> Run:
    facts = Facts()
    service = _service(platform, facts)
    latencies, calls = [], []
    for i in range(n):
        report_id, version = _draft(service, facts, facility, i)
        before = len(endpoint.accepted)
        start = time.monotonic()
        service.sign(READER, report_id, version, final=True, proof=None)
        calls.append(time.monotonic() - start)
        _wait(endpoint, before + 1)
        latencies.append(endpoint.accepted[before].at - start)
    return Run(latencies, calls)


def burst(platform: Platform, endpoint: FacilityEndpoint, facilities: list[int], n: int) -> Run:
    facts = Facts()
    service = _service(platform, facts)
    drafts = [_draft(service, facts, facilities[i % len(facilities)], 10_000 + i) for i in range(n)]
    before = len(endpoint.accepted)
    started: dict[int, float] = {}
    calls = []
    for report_id, version in drafts:
        started[report_id] = time.monotonic()
        signed = service.sign(READER, report_id, version, final=True, proof=None)
        calls.append(time.monotonic() - started[report_id])
        assert signed.id == report_id
    _wait(endpoint, before + n)
    latencies = []
    for received in endpoint.accepted[before:]:
        report_id = int(received.control_id.split(".")[0])  # the outbox message id's report
        latencies.append(received.at - started[report_id])
    return Run(latencies, calls)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signatures", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="PostgreSQL (default: SQLite)")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--poll-only",
        action="store_true",
        help="signatures do not wake the worker (as when another process signs)",
    )
    args = parser.parse_args(argv)
    global WAKE
    WAKE = not args.poll_only
    with tempfile.TemporaryDirectory(prefix="bench-oru-") as tmp, FacilityEndpoint() as endpoint:
        settings = Settings(data_dir=Path(tmp) / "data", database_url=args.database_url)
        platform = open_platform(settings)
        try:
            admin = Actor("bench", "network-admin")
            facilities = []
            for name in ("North", "South", "East", "West"):
                fid = platform.index.add_facility(f"Bench {name}").id
                address = f"127.0.0.1:{endpoint.port}"
                platform.results.set_endpoint(admin, None, fid, Channel.HL7, address, False)
                facilities.append(fid)
            platform.start(only=frozenset({"index-sync", "outbox"}))
            single = one_at_a_time(platform, endpoint, facilities[0], args.signatures).summary()
            many = burst(platform, endpoint, facilities, args.signatures).summary()
        finally:
            platform.close()
    database = "PostgreSQL" if args.database_url else "SQLite"
    how = "the worker polling every TELERAD_OUTBOX_SECONDS" if args.poll_only else "woken"
    print(f"sign → ORU acknowledged on loopback ({database}, {args.signatures} signatures, {how})")
    for label, figures in (("one at a time", single), ("burst, 4 facilities", many)):
        print(
            f"  {label:<20} median {figures['median_s'] * 1000:7.1f} ms   "
            f"p95 {figures['p95_s'] * 1000:7.1f} ms   max {figures['max_s'] * 1000:7.1f} ms   "
            f"sign() median {figures['sign_call_median_ms']:.1f} ms"
        )
    ok = single["median_s"] <= TARGET_MEDIAN and single["p95_s"] <= TARGET_P95
    print(
        f"  target (one at a time): median ≤ {TARGET_MEDIAN:g} s, p95 ≤ {TARGET_P95:g} s: "
        + ("met" if ok else "MISSED")
    )
    if args.json is not None:
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        body = {"at": stamp, "database": database, "one_at_a_time": single, "burst": many}
        args.json.write_text(json.dumps(body, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
