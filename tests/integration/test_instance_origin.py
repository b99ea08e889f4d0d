"""Who made each instance: STOW-RS by the reading network's accounts is marked as such.

Readiness counts only acquired images (issue 9, fault 1), so what a radiologist
or a network-wide service account stores (an SR saved from the viewer, an AI
result) must be told apart from what a facility sends.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from telerad.adapters.dicomweb.multipart import encode_multipart
from telerad.bootstrap import Platform
from telerad.domain.identity import Role
from telerad.storage.db import tables as t
from telerad.synthetic import StudySpec, ct_series, measurement_report, to_bytes
from telerad.web.app import create_app

CT = 'multipart/related; type="application/dicom"; boundary=b0und'


def _origin(p: Platform, sop_uid: str) -> str:
    with p.engine.connect() as conn:
        value = conn.execute(
            select(t.instance.c.origin).where(t.instance.c.sop_instance_uid == sop_uid)
        ).scalar_one()
    return str(value)


@pytest.mark.parametrize(
    ("role", "facility_bound", "origin"),
    [
        (Role.RADIOLOGIST, False, "reading"),
        (Role.NETWORK_ADMIN, False, "reading"),
        (Role.SERVICE, False, "reading"),  # a network-wide service account (an AI engine)
        (Role.SERVICE, True, "acquisition"),  # the facility's gateway
        (Role.FACILITY_USER, True, "acquisition"),  # a technologist sending a missed series
    ],
)
def test_stow_marks_who_made_the_instance(
    platform: Platform, role: Role, facility_bound: bool, origin: str
) -> None:
    p = platform
    north = p.index.add_facility("North", country="US", state="CA")
    user = p.auth.create_user("who", role, north.id if facility_bound else None)
    if role is Role.RADIOLOGIST:
        p.identity.grant_privileges(user.id, [north.id])
    token = p.auth.issue_token(user)
    spec = StudySpec()
    [image] = list(ct_series(spec, slices=1, rows=8, cols=8))
    report = measurement_report(spec)
    body = encode_multipart(
        "b0und", [("application/dicom", to_bytes(image)), ("application/dicom", to_bytes(report))]
    )
    client = TestClient(create_app(p))
    response = client.post(
        "/dicom-web/facilities/North/studies",
        content=body,
        headers={"Content-Type": CT, "Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text
    assert _origin(p, image.SOPInstanceUID) == origin
    assert _origin(p, report.SOPInstanceUID) == origin


def test_stores_without_an_origin_are_acquisitions(platform: Platform) -> None:
    spec = StudySpec()
    [image] = list(ct_series(spec, slices=1, rows=8, cols=8))
    assert platform.archive.store(platform.default_facility().id, to_bytes(image)).ok
    assert _origin(platform, image.SOPInstanceUID) == "acquisition"
