"""The flow of a study through ``telerad serve``, with real peers at every step.

A RIS sends the order over MLLP (python-hl7's ``mllp_send``), the CT scanner
sends the images with dcmtk's ``storescu``, reconciliation matches them and
finds the study complete, and the routing engine gives it to the one
radiologist who may read it: licensed in the facility's state, privileged
there, a neuroradiologist on shift and signed in. The facility sees the order's
status and study over REST; the radiologist sees the study, and why, on the
worklist.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from tests.conftest import LiveServer, require_tool, run_cli
from tests.support import eventually

from telerad.synthetic import StudySpec, ct_series, to_bytes

HL7 = Path(__file__).parents[1] / "data" / "hl7"
FACILITY, ACCESSION, PATIENT = "North Hospital", "NH24031600017", "E4471188"


def cli(data_dir: Path, *args: str, stdin: str | None = None) -> str:
    run = run_cli(data_dir, *args, input=stdin)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.stdout


def until(what: str, probe: Callable[[], Any], seconds: float = 60) -> Any:
    return eventually(probe, seconds, 0.3, what)


def test_an_order_and_its_images_reach_the_one_eligible_reader(
    tmp_path: Path, server_factory: Callable[..., LiveServer]
) -> None:
    storescu, mllp_send = (
        require_tool("storescu"),
        shutil.which("mllp_send", path=str(Path(sys.executable).parent)),
    )
    assert mllp_send, "python-hl7 installs mllp_send"
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    cli(
        data_dir,
        "facility",
        "add",
        FACILITY,
        "--ae",
        "NHCT1",
        "--host",
        "127.0.0.1",
        "--country",
        "US",
        "--state",
        "IL",
    )
    password = "a long enough passphrase 1"
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    shift = (
        "--starts-at",
        (now - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M"),
        "--ends-at",
        (now + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"),
    )
    for name, licence in (("dr.illinois", "US-IL"), ("dr.texas", "US-TX")):
        cli(
            data_dir,
            "user",
            "add",
            name,
            "--role",
            "radiologist",
            "--password-stdin",
            "--licence",
            licence,
            "--privilege",
            FACILITY,
            stdin=password,
        )
        cli(data_dir, "reader", "set", name, "--subspecialty", "neuro", "--modality", "CT")
        cli(data_dir, "reader", "shift", "add", name, *shift)
    cli(
        data_dir,
        "user",
        "add",
        "clerk",
        "--role",
        "facility-user",
        "--facility",
        FACILITY,
        "--password-stdin",
        stdin=password,
    )
    tokens = {
        n: cli(data_dir, "token", "create", n).strip().splitlines()[-1]
        for n in ("dr.illinois", "dr.texas", "clerk")
    }
    server = server_factory(
        data_dir, {"TELERAD_STABLE_SECONDS": "1", "TELERAD_RECONCILE_SECONDS": "0.5"}
    )

    def get(who: str, path: str) -> httpx.Response:
        return httpx.get(
            server.http_url + path, headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=10
        )

    for reader in ("dr.illinois", "dr.texas"):  # both signed in (a token used just now)
        assert get(reader, "/api/worklist").json()["items"] == []

    # 1. The order, from the RIS.
    mllp_port = server.env["TELERAD_MLLP_PORT"]
    sent = subprocess.run(
        [
            mllp_send,
            "--loose",
            "--port",
            mllp_port,
            "--file",
            str(HL7 / "orm_o01_v23.hl7"),
            "127.0.0.1",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "MSA|AA|" in sent.stdout.replace("\r", "\n"), sent.stdout + sent.stderr
    ordered = get("clerk", f"/api/orders?accession={ACCESSION}").json()
    assert (ordered["status"], ordered["study_instance_uid"], ordered["priority"]) == (
        "scheduled",  # it came with its appointment (ORC-7.4)
        "",
        "stroke",
    )

    # 2. The images, from the scanner (its AE title and address registered for the facility).
    spec = StudySpec(patient_id=PATIENT, accession=ACCESSION, description="CT HEAD WO CONTRAST")
    files = []
    for i, ds in enumerate(ct_series(spec, slices=8, rows=64, cols=64)):
        path = tmp_path / f"ct{i}.dcm"
        path.write_bytes(to_bytes(ds))
        files.append(str(path))
    stored = subprocess.run(
        [
            storescu,
            "-aet",
            "NHCT1",
            "-aec",
            server.aet,
            "127.0.0.1",
            str(server.dicom_port),
            *files,
        ],
        env=dict(os.environ, TCP_NODELAY="1"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert stored.returncode == 0, stored.stdout + stored.stderr

    # 3. Matched, complete and stable: the order is ready and names its study.
    ready = until(
        "the order to be ready",
        lambda: (
            (o := get("clerk", f"/api/orders?accession={ACCESSION}").json())["status"] == "ready"
            and o
        ),
    )
    assert ready["study_instance_uid"] == spec.study_uid
    state = get("clerk", f"/api/reconciliation/{spec.study_uid}").json()
    assert (state["state"], state["matched_by"], state["problems"]) == (
        "ready",
        "accession number",
        [],
    )

    # 4. On the licensed reader's worklist, with the reason; never on the other's.
    item = until(
        "the study on the worklist",
        lambda: next(
            (
                i
                for i in get("dr.illinois", "/api/worklist").json()["items"]
                if i["study_uid"] == spec.study_uid
            ),
            None,
        ),
    )
    assert (item["priority"], item["subspecialty"], item["state"]) == (
        "stroke",
        "neuro",
        "assigned",
    )
    assert "licensed in US-IL" in item["reason"]
    assert item["viewer_url"].endswith(spec.study_uid)
    assert all(
        i["study_uid"] != spec.study_uid for i in get("dr.texas", "/api/worklist").json()["items"]
    )
    assert get("clerk", "/api/worklist").status_code == 403  # facility staff do not read
