# ruff: noqa: F811
"""A signed report as DICOM on a real platform: the SR (TID 2000) and the Encapsulated
PDF stored into the study by the outbox's archive step (seen through QIDO-RS and WADO,
checked by dicom3tools ``dciodvfy`` and dcmtk ``dsrdump``), C-STOREd to the facility's
PACS node (dcmtk ``storescp``), a final superseding the preliminary; the study stays
with its reader."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pydicom import dcmread
from pydicom.filebase import DicomBytesIO
from tests.integration.test_dimse_retrieve import Storescp
from tests.integration.test_reports_api import PASSWORD, Desk, desk  # noqa: F401, F811  (fixture)
from tests.servers import require_tool

from telerad.domain.model import Level
from telerad.domain.outbox import Channel, MessageState
from telerad.services.access_audit import Actor
from telerad.services.outbox import OutboxFilter

SR, PDF = "1.2.840.10008.5.1.4.1.1.88.33", "1.2.840.10008.5.1.4.1.1.104.1"
ADMIN = Actor("admin", "admin", source="test")


def _sign(desk: Desk, final: bool) -> dict[str, object]:
    c, ana = desk.client, desk.as_("ana")
    rid = desk.platform.reports.store.for_study(desk.uid)[0].id
    report = c.get(f"/api/reports/{rid}", headers=ana).json()
    signed = c.post(
        f"/api/reports/{rid}/sign",
        json={
            "version": report["version"],
            "password": PASSWORD,
            "code": desk.code(),
            "final": final,
        },
        headers=ana,
    )
    assert signed.status_code == 200, signed.text
    return dict(signed.json())


def _draft(desk: Desk) -> None:
    c, ana = desk.client, desk.as_("ana")
    report = c.post("/api/reports", json={"study_instance_uid": desk.uid}, headers=ana).json()
    template = desk.platform.reports.templates.get("ct-head")
    assert template is not None
    impression = next(s.id for s in template.sections if s.heading and s.heading.value == "19005-8")
    saved = c.put(
        f"/api/reports/{report['id']}",
        json={
            "version": report["version"],
            "sections": {**report["sections"], impression: "No acute intracranial abnormality."},
            "fields": {**report["fields"], "hemorrhage": "absent"},
        },
        headers=ana,
    )
    assert saved.status_code == 200, saved.text


def _series(desk: Desk, modality: str) -> list[dict[str, object]]:
    found = desk.client.get(
        f"/dicom-web/studies/{desk.uid}/series",
        params={"Modality": modality},
        headers=desk.as_("north.tech"),
    )
    assert found.status_code in (200, 204), found.text
    return list(found.json()) if found.status_code == 200 else []


def _kept(desk: Desk, sop_class: str) -> list[bytes]:
    p = desk.platform
    return [
        p.archive.read(i)
        for i in p.archive.locate(Level.STUDY, [desk.uid])
        if i.sop_class_uid == sop_class
    ]


def test_signatures_store_sr_and_pdf_in_the_study_and_send_them_to_the_pacs(
    desk: Desk, tmp_path: Path
) -> None:
    p = desk.platform
    north = p.index.facility_by_name("North")
    assert north is not None
    pacs = Storescp(tmp_path / "pacs", "NORTHPACS", accept_all=False)
    try:
        p.results.set_endpoint(
            ADMIN, None, north.id, Channel.DICOM, f"NORTHPACS@127.0.0.1:{pacs.port}", False
        )
        _draft(desk)
        assert _sign(desk, final=False)["status"] == "preliminary"
        p.outbox.run()
        # Made while reading: the reconciliation pass leaves the study with its reader.
        p.reconciler.run()
        assert p.reading.holder(desk.uid) == desk.ana.id

        [preliminary] = [dcmread(DicomBytesIO(b)) for b in _kept(desk, SR)]
        assert preliminary.VerificationFlag == "UNVERIFIED"
        assert preliminary.PreliminaryFlag == "PRELIMINARY"

        assert _sign(desk, final=True)["status"] == "final"
        p.outbox.run()
        rows = p.outbox.store.find(OutboxFilter(report_id=None))
        assert {(m.channel, m.state) for m in rows} >= {
            (Channel.ARCHIVE, MessageState.SENT),
            (Channel.DICOM, MessageState.SENT),
        }
        assert all(
            m.state is MessageState.SENT
            for m in rows
            if m.channel in (Channel.ARCHIVE, Channel.DICOM)
        )

        srs = sorted(
            (dcmread(DicomBytesIO(b)) for b in _kept(desk, SR)), key=lambda d: d.InstanceNumber
        )
        pdfs = _kept(desk, PDF)
        assert len(srs) == 2 and len(pdfs) == 2
        final = srs[-1]
        assert (final.CompletionFlag, final.VerificationFlag) == ("COMPLETE", "VERIFIED")
        assert (
            final.VerifyingObserverSequence[0].VerifyingObserverName == "ana^"
        )  # the version's author
        predecessor = final.PredecessorDocumentsSequence[0].ReferencedSeriesSequence[0]
        assert (
            predecessor.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == srs[0].SOPInstanceUID
        )
        assert final.StudyInstanceUID == desk.uid and final.Modality == "SR"

        # QIDO-RS lists the report series, WADO-RS returns the instances.
        [sr_series] = _series(desk, "SR")
        [doc_series] = _series(desk, "DOC")
        for series in (sr_series, doc_series):
            uid = series["0020000E"]["Value"][0]  # type: ignore[index]
            got = desk.client.get(
                f"/dicom-web/studies/{desk.uid}/series/{uid}",
                headers={
                    **desk.as_("north.tech"),
                    "Accept": "multipart/related; type=application/dicom",
                },
            )
            assert got.status_code == 200 and b"DICM" in got.content

        # The validators: dciodvfy reports no error; dsrdump reads the sections.
        require_tool("dciodvfy")
        require_tool("dsrdump")
        sr_file, pdf_file = tmp_path / "report-sr.dcm", tmp_path / "report-pdf.dcm"
        sr_file.write_bytes(_kept(desk, SR)[-1])
        pdf_file.write_bytes(pdfs[-1])
        for path in (sr_file, pdf_file):
            checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True)
            assert "Error" not in checked.stdout + checked.stderr, checked.stderr
        dumped = subprocess.run(["dsrdump", str(sr_file)], capture_output=True, text=True)
        assert dumped.returncode == 0, dumped.stderr
        assert '"Diagnostic imaging report"' in dumped.stdout
        assert '"Impressions"' in dumped.stdout and "No acute intracranial" in dumped.stdout

        # The facility's PACS received all four objects.
        received = pacs.received()
        kept_uids = {dcmread(DicomBytesIO(b)).SOPInstanceUID for b in _kept(desk, SR) + pdfs}
        assert set(received) == kept_uids
    finally:
        pacs.stop()
