"""The outbox across crashes, end to end: ``telerad serve`` killed with SIGKILL while it
delivers queued results, started again, and every message reaches the facility
endpoint (python-hl7's asyncio MLLP server) in order, exactly once per control ID;
on PostgreSQL, two ``telerad worker`` processes share the outbox, one of them
killed mid-way. The receiver counts every arrival: a message whose ACK the killed
process never recorded arrives twice, under the same MSH-10, and nothing else does.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bench.facility_endpoint import FacilityEndpoint
from tests.integration import results_support as sign
from tests.servers import start_server
from tests.support import eventually

from telerad.bootstrap import open_platform
from telerad.config import Settings
from telerad.domain.outbox import Channel, MessageState
from telerad.services.access_audit import Actor
from telerad.services.outbox import OutboxFilter

ADMIN = Actor("admin", "network-admin")
#: Short timeouts: a claim held by a killed process runs out in 1 + 2 + 10 s.
FAST = {"TELERAD_RESULTS_CONNECT_SECONDS": "1", "TELERAD_RESULTS_ANSWER_SECONDS": "2"}


def _queue(settings: Settings, endpoint: FacilityEndpoint, per_facility: int) -> dict[str, int]:
    """Signatures of two facilities queued with the platform stopped: control ID → facility."""
    queued: dict[str, int] = {}
    with open_platform(settings) as platform:
        for name in ("North", "South"):
            facility = platform.index.add_facility(name, name.upper()).id
            address = f"127.0.0.1:{endpoint.port}"
            platform.results.set_endpoint(ADMIN, None, facility, Channel.HL7, address, False)
        for n in range(per_facility):
            for facility in (1, 2):
                sign.signed(platform, facility, n, datetime.now(UTC))
        for m in platform.results.outbox.find(OutboxFilter(limit=1000)):
            queued[m.message_id] = m.facility_id
    return dict(sorted(queued.items(), key=lambda kv: int(kv[0].split(".")[0])))


def _check(endpoint: FacilityEndpoint, queued: dict[str, int], killed: int) -> None:
    """Each message once per control ID, in queue order per facility; duplicates only
    of what was in flight when a process was killed (one per facility at most)."""
    arrivals = endpoint.accepted_ids()
    firsts = endpoint.first_arrivals()
    print(f"arrivals {len(arrivals)}, distinct {len(firsts)}")  # shown with -s (the drill)
    assert sorted(firsts) == sorted(queued)  # none lost, none unknown
    for facility in (1, 2):
        expected = [cid for cid, f in queued.items() if f == facility]
        assert [cid for cid in firsts if queued[cid] == facility] == expected
    assert len(arrivals) - len(firsts) <= 2 * killed


def _states(settings: Settings) -> set[MessageState]:
    with open_platform(settings) as platform:
        return {m.state for m in platform.results.outbox.find(OutboxFilter(limit=1000))}


def test_serve_killed_while_delivering_delivers_everything_after_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, fsync=False)
    with FacilityEndpoint(answer_delay=0.05) as endpoint:
        queued = _queue(settings, endpoint, per_facility=20)
        assert len(queued) == 40
        server = start_server(data_dir, FAST)
        try:
            eventually(lambda: len(endpoint.accepted_ids()) >= 8, 60, message="deliveries begin")
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(10)
            before = len(endpoint.first_arrivals())
            print(f"{before} of 40 delivered when killed")
            assert before < 40  # killed mid-way
            server = start_server(data_dir, FAST)
            eventually(lambda: len(endpoint.first_arrivals()) == 40, 120, message="all delivered")
        finally:
            server.stop()
        _check(endpoint, queued, killed=1)
    assert _states(settings) == {MessageState.SENT}


def _worker(data_dir: Path, url: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, TELERAD_DATA_DIR=str(data_dir), TELERAD_DATABASE_URL=url, **FAST)
    env["TELERAD_FSYNC"] = "false"
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "telerad.cli.main", "worker"], env=env, stdout=out, stderr=out
        )


@pytest.mark.postgres
def test_two_workers_on_postgresql_one_killed_deliver_each_once_in_order(
    tmp_path: Path, pg_migrated_url: str
) -> None:
    settings = Settings(data_dir=tmp_path / "data", database_url=pg_migrated_url, fsync=False)
    with FacilityEndpoint(answer_delay=0.02) as endpoint:
        queued = _queue(settings, endpoint, per_facility=30)
        workers = [
            _worker(tmp_path / f"w{n}", pg_migrated_url, tmp_path / f"worker-{n}.log")
            for n in range(2)
        ]
        try:
            eventually(lambda: len(endpoint.accepted_ids()) >= 10, 60, message="deliveries begin")
            workers[0].send_signal(signal.SIGKILL)
            workers[0].wait(10)
            eventually(lambda: len(endpoint.first_arrivals()) == 60, 120, message="all delivered")
        finally:
            for w in workers:
                if w.poll() is None:
                    w.terminate()
                    w.wait(20)
        assert workers[1].returncode == 0  # stopped cleanly by SIGTERM
        _check(endpoint, queued, killed=1)
    assert _states(settings) == {MessageState.SENT}
