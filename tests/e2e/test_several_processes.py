"""Two `telerad serve` processes on one PostgreSQL behind haproxy (issue 10, part 2).

Ingest (C-STORE through haproxy's TCP front end, alternating between the two
processes) and worklist traffic (REST through its HTTP front end) reach both; one
process holds the ``reading`` lease and decides, the other forwards. No study is
assigned twice, no instance is lost; when either process is killed, the other
carries on: the lease passes within its time to live, the open studies keep
their holders, new studies are routed.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select
from tests.conftest import LiveServer, free_port, require_tool
from tests.integration.test_dimse_support import storescu
from tests.support import eventually

from telerad.storage.db import tables as t
from telerad.synthetic import StudySpec, ct_series, to_bytes

PASSWORD = "several processes passphrase"


def _ok(result: subprocess.CompletedProcess[bytes]) -> None:
    assert result.returncode == 0, result.stderr.decode()


@pytest.fixture
def haproxy(tmp_path: Path) -> Iterator[Callable[[list[LiveServer]], tuple[str, int]]]:
    """haproxy (Debian's) in front of the given servers: (HTTP base URL, DICOM port)."""
    binary = require_tool("haproxy")
    procs: list[subprocess.Popen[bytes]] = []

    def start(servers: list[LiveServer]) -> tuple[str, int]:
        http_port, dicom_port = free_port(), free_port()
        http = "\n".join(
            f"    server s{i} {s.http_url.split('//')[1]} check inter 500 fall 2 rise 2"
            for i, s in enumerate(servers)
        )
        dicom = "\n".join(
            f"    server s{i} 127.0.0.1:{s.dicom_port} check inter 500 fall 2 rise 2"
            for i, s in enumerate(servers)
        )
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            f"""global
    maxconn 256
defaults
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    retries 3
    option redispatch
frontend web
    mode http
    bind 127.0.0.1:{http_port}
    default_backend telerad_http
backend telerad_http
    mode http
    balance roundrobin
    option httpchk GET /healthz
    retry-on conn-failure empty-response response-timeout
{http}
frontend dicom
    mode tcp
    bind 127.0.0.1:{dicom_port}
    default_backend telerad_dicom
backend telerad_dicom
    mode tcp
    balance roundrobin
{dicom}
"""
        )
        proc = subprocess.Popen([binary, "-db", "-f", str(config)], stderr=subprocess.PIPE)
        procs.append(proc)
        base = f"http://127.0.0.1:{http_port}"
        eventually(
            lambda: httpx.get(base + "/healthz", timeout=1).status_code == 200,
            20,
            0.2,
            "haproxy passing /healthz through",
            ignoring=(httpx.HTTPError,),
        )
        return base, dicom_port

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(10)


def _until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    return eventually(check, timeout, 0.5, what, ignoring=(httpx.HTTPError,))


def _send_study(dicom_port: int, tmp_path: Path, accession: str, slices: int = 4) -> StudySpec:
    spec = StudySpec(accession=accession, patient_id=f"P-{accession}")
    files = []
    for ds in ct_series(spec, slices=slices, rows=32, cols=32):
        path = tmp_path / f"{accession}-{int(ds.InstanceNumber):03d}.dcm"
        path.write_bytes(to_bytes(ds))
        files.append(path)
    result = storescu(dicom_port, files, aet="NORTHCT")
    assert result.returncode == 0, result.stderr
    return spec


@pytest.mark.serial  # two servers, haproxy and a lease that must pass in time: alone
@pytest.mark.postgres
@pytest.mark.parametrize("kill", ["the deciding process", "the other process"])
def test_two_processes_behind_haproxy_share_the_work_and_survive_a_kill(
    tmp_path: Path,
    pg_url: str,
    server_factory: Callable[..., LiveServer],
    haproxy: Callable[[list[LiveServer]], tuple[str, int]],
    kill: str,
) -> None:
    require_tool("storescu")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    env = {
        "TELERAD_DATABASE_URL": pg_url,
        "TELERAD_STABLE_SECONDS": "2",
        "TELERAD_RECONCILE_SECONDS": "1",
        "TELERAD_WORKLIST_TICK_SECONDS": "2",
    }
    first = server_factory(data_dir, env)  # migrates the database
    second = server_factory(data_dir, env)
    for args in (
        ("facility", "add", "North", "--ae", "NORTHCT", "--host", "127.0.0.1",
         "--country", "US", "--state", "CA"),
        ("user", "add", "root", "--role", "network-admin", "--password-stdin"),
        ("user", "add", "dr.one", "--role", "radiologist", "--licence", "US-CA",
         "--privilege", "North", "--password-stdin"),
        ("user", "add", "dr.two", "--role", "radiologist", "--licence", "US-CA",
         "--privilege", "North", "--password-stdin"),
    ):  # fmt: skip
        _ok(first.telerad(*args, input=PASSWORD.encode()))
    for reader in ("dr.one", "dr.two"):
        _ok(first.telerad("reader", "set", reader, "--modality", "CT", "--subspecialty", "chest"))
        _ok(first.telerad("reader", "shift", "add", reader, "--days", "daily",
                          "--from", "00:00", "--to", "24:00"))  # fmt: skip
    tokens = {}
    for who in ("root", "dr.one", "dr.two"):
        made = first.telerad("token", "create", who)
        _ok(made)
        tokens[who] = {"Authorization": f"Bearer {made.stdout.decode().strip()}"}
    base, dicom_port = haproxy([first, second])
    web = httpx.Client(base_url=base, timeout=30)

    def worklist(who: str) -> list[dict[str, Any]]:
        r = web.get("/api/worklist", headers=tokens[who])
        if r.status_code == 503:  # the lease is changing hands
            return []
        assert r.status_code == 200, r.text
        return list(r.json()["items"])

    # Both readers are signed in (token use, through whichever process haproxy picks).
    for who in ("dr.one", "dr.two"):
        _until(
            f"{who} signed in",
            lambda w=who: web.get("/api/worklist", headers=tokens[w]).status_code == 200,
        )  # noqa: E501

    def place(accession: str) -> None:
        body = {
            "accession_number": accession,
            "patient": {"patient_id": f"P-{accession}"},
            "procedure": {"code": "71250"},
            "priority": "stat",
            "facility": "North",
        }
        r = web.post("/api/orders", json=body, headers=tokens["root"])
        assert r.status_code in (200, 201), r.text

    sent: list[StudySpec] = []
    for n in range(6):
        place(f"MP{n}")
        sent.append(_send_study(dicom_port, tmp_path, f"MP{n}"))

    def everything_assigned(expected: int) -> bool:
        held = worklist("dr.one") + worklist("dr.two")
        return (
            len({i["study_uid"] for i in held if i["state"] in ("assigned", "opened")}) == expected
        )

    _until("six studies assigned", lambda: everything_assigned(6), timeout=90)
    # A claim through the load balancer (whichever process takes it).
    mine = worklist("dr.one")
    if mine:
        claimed = web.post(f"/api/worklist/{mine[0]['study_uid']}/claim", headers=tokens["dr.one"])
        assert claimed.status_code == 200, claimed.text

    engine = create_engine(pg_url)
    try:
        with engine.connect() as conn:
            lease = conn.execute(select(t.runtime_lease)).one()
        leader_pid = int(lease.holder.split(":")[1])
        assert leader_pid in (first.process.pid, second.process.pid)
        # Asked directly, the other process answers what the deciding one decided.
        follower = first if second.process.pid == leader_pid else second
        leader = second if follower is first else first
        for who in ("dr.one", "dr.two"):
            direct = httpx.get(follower.http_url + "/api/worklist", headers=tokens[who])
            at_leader = httpx.get(leader.http_url + "/api/worklist", headers=tokens[who])
            assert direct.status_code == at_leader.status_code == 200
            assert [i["study_uid"] for i in direct.json()["items"]] == [
                i["study_uid"] for i in at_leader.json()["items"]
            ]
        board = httpx.get(follower.http_url + "/api/worklist/board", headers=tokens["root"])
        assert board.status_code == 200 and len(board.json()["items"]) == 6
        victim = next(
            s for s in (first, second)
            if (s.process.pid == leader_pid) == (kill == "the deciding process")
        )  # fmt: skip
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(10)

        # The survivor carries on: the worklist answers again, with the holds kept.
        _until("the worklist answering again", lambda: everything_assigned(6), timeout=60)
        if mine:
            again = {i["study_uid"]: i for i in worklist("dr.one")}
            assert again[mine[0]["study_uid"]]["state"] == "opened"
        # New studies still arrive and are routed.
        for n in range(6, 9):
            place(f"MP{n}")
            sent.append(_send_study(dicom_port, tmp_path, f"MP{n}"))
        _until("nine studies assigned", lambda: everything_assigned(9), timeout=90)

        with engine.connect() as conn:
            instances = conn.execute(select(func.count()).select_from(t.instance)).scalar_one()
            entries = conn.execute(
                select(t.worklist_entry.c.study_uid, t.worklist_entry.c.id)
            ).all()
            assigned = conn.execute(
                select(t.worklist_event.c.entry_id, func.count())
                .where(t.worklist_event.c.kind == "assigned")
                .group_by(t.worklist_event.c.entry_id)
            ).all()
        assert instances == 4 * len(sent)  # no lost instance
        by_study: dict[str, int] = {}
        for uid, _ in entries:
            by_study[uid] = by_study.get(uid, 0) + 1
        assert by_study == {s.study_uid: 1 for s in sent}  # one read each, never two
        # Each read was assigned once: a take-over keeps the holds, it does not route again.
        assert sorted(n for _, n in assigned) == [1] * len(sent)
    finally:
        engine.dispose()
