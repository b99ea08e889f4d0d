"""The report as PDF (adapters/sr/report_pdf.py): weasyprint renders the letterhead, the
sections and the PRELIMINARY / CORRECTED banners (read back with poppler's pdftotext),
wrapped as an Encapsulated PDF in the study. Integration tier: fonts and a temporary file."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from tests.unit.test_hl7_oru import TEMPLATE, _report
from tests.unit.test_report_sr import ISSUER, STUDY_UID, _study

from telerad.adapters.sr.report_pdf import (
    Letterhead,
    build_pdf_dataset,
    page_facts,
    render_pdf,
    report_html,
)


@pytest.mark.parametrize(
    ("status", "banner"),
    [("preliminary", "PRELIMINARY"), ("corrected", "CORRECTED"), ("final", "")],
)
def test_the_pdf_has_the_letterhead_sections_and_banner(
    status: str, banner: str, tmp_path: Path
) -> None:
    report = _report(status)
    html = report_html(
        report,
        TEMPLATE,
        page_facts(_study(), "CT head"),
        Letterhead("North Hospital", "CA, US", "Reading Net"),
    )
    pdf = render_pdf(html)
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    ds = build_pdf_dataset(report, pdf, _study(), ISSUER)
    assert ds.Modality == "DOC" and ds.MIMETypeOfEncapsulatedDocument == "application/pdf"
    assert ds.StudyInstanceUID == STUDY_UID and ds.EncapsulatedDocumentLength == len(pdf)
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed")
    path = tmp_path / "report.pdf"
    path.write_bytes(pdf)
    text = subprocess.run(["pdftotext", str(path), "-"], capture_output=True, text=True).stdout
    assert "North Hospital" in text and "Reading Net" in text and "ACC-7" in text
    assert "Impression" in text
    assert ("PRELIMINARY" in text) == (banner == "PRELIMINARY")
    assert ("CORRECTED" in text) == (banner == "CORRECTED")
