"""The cross-tenant probe suite: as users and AEs of facility Alpha, probe facility Beta.

Every DICOMweb route, the study list and every DIMSE service is called on
Beta's studies, series, instances and patients — by UID, with wildcards,
limits and offsets — and on identifiers that do not exist at all. Nothing of
Beta may come back, and the answer for Beta's data must be the answer for
nothing (same status, same body once the UIDs are masked), so even a count
or an error message cannot tell that Beta's data is there.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_context
from tests.integration.test_dimse_support import association

from telerad.adapters.dicomweb.multipart import encode_multipart, new_boundary
from telerad.adapters.dimse.contexts import (
    PATIENT_ROOT_FIND,
    STUDY_ROOT_FIND,
    STUDY_ROOT_GET,
    STUDY_ROOT_MOVE,
)
from telerad.adapters.dimse.server import DimseServer, start_dimse_server
from telerad.bootstrap import Platform, open_platform
from telerad.config import Settings
from telerad.domain.identity import Role
from telerad.domain.model import Level
from telerad.domain.query import Query
from telerad.services.people import Administration
from telerad.synthetic import StudySpec, ct_series, to_bytes
from telerad.web.app import create_app

PASSWORD = "tenancy test password"
SHARED_PID = "SHARED-7"  # the same Patient ID at both facilities: two different patients


@dataclass
class Study:
    study: str
    series: str
    sop: str
    patient_id: str
    patient_name: str


@dataclass
class World:
    platform: Platform
    client: TestClient
    dimse: DimseServer
    alpha: list[Study]
    beta: list[Study]
    tokens: dict[str, str]

    def get(self, who: str, url: str, **headers: str) -> Any:
        return self.client.get(
            url, headers={"Authorization": f"Bearer {self.tokens[who]}", **headers}
        )


def _store(platform: Platform, facility_id: int, spec: StudySpec, n: int = 2) -> Study:
    datasets = list(ct_series(spec, slices=n, rows=16, cols=16))
    for ds in datasets:
        assert platform.archive.store(facility_id, to_bytes(ds)).ok
    first = datasets[0]
    return Study(
        spec.study_uid,
        str(first.SeriesInstanceUID),
        str(first.SOPInstanceUID),
        spec.patient_id,
        spec.patient_name,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    data = tmp_path_factory.mktemp("tenancy") / "data"
    platform = open_platform(Settings(data_dir=data, fsync=False))
    admin = Administration(platform.index, platform.auth, platform.audit)
    alpha = admin.add_facility("Alpha Hospital", "t", ae_title="ALPHA", host="127.0.0.1")
    beta = admin.add_facility("Beta Clinic", "t", ae_title="BETA", host="127.0.0.1")
    admin.add_facility("Gamma Center", "t", ae_title="GAMMA", host="10.66.0.0/16")
    admin.add_node("ALPHADEST", "127.0.0.1", 104, "t", "Alpha Hospital")
    admin.add_node("BETADEST", "127.0.0.1", 104, "t", "Beta Clinic")
    a = [
        _store(platform, alpha.id, StudySpec(patient_id="PA-1", patient_name="ALPHA^ANN")),
        _store(platform, alpha.id, StudySpec(patient_id=SHARED_PID, patient_name="ALPHA^SAM")),
    ]
    b = [
        _store(platform, beta.id, StudySpec(patient_id="PB-1", patient_name="BETA^BOB")),
        _store(platform, beta.id, StudySpec(patient_id=SHARED_PID, patient_name="BETA^SUE")),
    ]
    users = {
        "tech_a": admin.add_user(
            "tech_a", Role.FACILITY_USER, "t", facility="Alpha Hospital", password=PASSWORD
        ),
        "rad_a": admin.add_user(
            "rad_a", Role.RADIOLOGIST, "t", password=PASSWORD, privileges=["Alpha Hospital"]
        ),
        "svc_a": admin.add_user("svc_a", Role.SERVICE, "t", facility="Alpha Hospital"),
        "admin": admin.add_user("admin", Role.NETWORK_ADMIN, "t", password=PASSWORD),
        "auditor": admin.add_user("auditor", Role.AUDITOR, "t", password=PASSWORD),
    }
    tokens = {name: platform.auth.issue_token(user) for name, user in users.items()}
    dimse = start_dimse_server(platform, port=0)
    with TestClient(create_app(platform)) as client:
        yield World(platform, client, dimse, a, b, tokens)
    dimse.shutdown()
    platform.close()


ALPHA_PEOPLE = ("tech_a", "rad_a", "svc_a")


def _nothing() -> Study:
    return Study(generate_uid(), generate_uid(), generate_uid(), "NOBODY", "NO^ONE")


def _urls(s: Study) -> list[str]:
    st, se, sop = s.study, s.series, s.sop
    inst = f"/dicom-web/studies/{st}/series/{se}/instances/{sop}"
    return [
        f"/dicom-web/studies/{st}",
        f"/dicom-web/studies/{st}/metadata",
        f"/dicom-web/studies/{st}/rendered",
        f"/dicom-web/studies/{st}/thumbnail",
        f"/dicom-web/studies/{st}/series/{se}",
        f"/dicom-web/studies/{st}/series/{se}/metadata",
        f"/dicom-web/studies/{st}/series/{se}/rendered",
        f"/dicom-web/studies/{st}/series/{se}/thumbnail",
        inst,
        f"{inst}/metadata",
        f"{inst}/frames/1",
        f"{inst}/frames/1/rendered",
        f"{inst}/rendered",
        f"{inst}/thumbnail",
        f"{inst}/bulkdata/7FE00010",
        f"/dicom-web/wado?requestType=WADO&studyUID={st}&seriesUID={se}&objectUID={sop}",
        f"/dicom-web/wado?requestType=WADO&studyUID={st}&seriesUID={se}&objectUID={sop}"
        "&contentType=application/dicom",
        f"/dicom-web/studies/{st}/series",
        f"/dicom-web/studies/{st}/instances",
        f"/dicom-web/studies/{st}/series/{se}/instances",
        f"/dicom-web/studies?StudyInstanceUID={st}",
        f"/dicom-web/series?SeriesInstanceUID={se}",
        f"/dicom-web/instances?SOPInstanceUID={sop}",
        f"/dicom-web/studies?PatientID={s.patient_id}&includefield=all",
        f"/dicom-web/studies?PatientName={s.patient_name.split('^')[0]}*",
        f"/dicom-web/studies?PatientName={s.patient_name.split('^')[0].lower()}&fuzzymatching=true",
    ]


def _masked(s: Study, response: Any) -> tuple[int, str]:
    body = response.content.decode("latin-1")
    for value in (s.study, s.series, s.sop, s.patient_id, s.patient_name):
        body = body.replace(value, "<X>")
    body = re.sub(r"--[0-9a-f]{16,}", "--<boundary>", body)
    return response.status_code, body


@pytest.mark.parametrize("who", ALPHA_PEOPLE)
def test_beta_data_is_indistinguishable_from_nothing(world: World, who: str) -> None:
    for b in world.beta:
        nothing = _nothing()
        for probe, control in zip(_urls(b), _urls(nothing), strict=True):
            if SHARED_PID in probe:
                continue  # Alpha has a patient with this ID too: see the search test
            seen = world.get(who, probe)
            assert _masked(b, seen) == _masked(nothing, world.get(who, control)), probe
            assert seen.status_code in (200, 204, 404), probe
            for value in (b.study, b.series, b.sop, b.patient_name, b.patient_id):
                if value not in probe:  # an echo of the request's own identifier is no leak
                    assert value not in seen.text, probe


@pytest.mark.parametrize("who", ALPHA_PEOPLE)
def test_alpha_people_see_alpha_whole(world: World, who: str) -> None:
    for a in world.alpha:
        for url in _urls(a)[:17]:  # every retrieve route answers for Alpha's own data
            assert world.get(who, url).status_code == 200, url


@pytest.mark.parametrize("who", ALPHA_PEOPLE)
def test_searches_and_counts_cover_alpha_only(world: World, who: str) -> None:
    mine = {a.study for a in world.alpha}
    for url in (
        "/dicom-web/studies",
        "/dicom-web/studies?limit=1000",
        "/dicom-web/studies?PatientID=*",
        "/dicom-web/studies?PatientName=*",
        f"/dicom-web/studies?PatientID={SHARED_PID}",
        "/dicom-web/studies?StudyDate=19000101-20991231",
        "/dicom-web/studies?ModalitiesInStudy=CT",
        "/dicom-web/studies?" + "&".join(f"StudyInstanceUID={s.study}" for s in world.beta),
    ):
        found = {r["0020000D"]["Value"][0] for r in world.get(who, url).json() or []}
        assert found <= mine, url
    shared = world.get(who, f"/dicom-web/studies?PatientID={SHARED_PID}&includefield=all").json()
    assert [r["00100010"]["Value"][0]["Alphabetic"] for r in shared] == ["ALPHA^SAM"]
    # Paging past the end of Alpha's list shows nothing more (no count of the rest leaks).
    assert world.get(who, "/dicom-web/studies?offset=2").status_code in (200, 204)
    assert not world.get(who, "/dicom-web/studies?offset=2").content.strip(b"[]")
    series = world.get(who, "/dicom-web/series?limit=1000").json()
    assert {r["0020000D"]["Value"][0] for r in series} <= mine
    instances = world.get(who, "/dicom-web/instances?limit=1000").json()
    assert len(instances) == 4  # 2 studies × 2 instances, all Alpha's


def test_network_admin_sees_both(world: World) -> None:
    found = {r["0020000D"]["Value"][0] for r in world.get("admin", "/dicom-web/studies").json()}
    assert found == {s.study for s in world.alpha + world.beta}
    assert (
        world.get("admin", f"/dicom-web/studies/{world.beta[0].study}/metadata").status_code == 200
    )


def test_auditor_sees_no_images(world: World) -> None:
    response = world.get("auditor", "/dicom-web/studies")
    assert response.status_code == 403
    assert world.get("auditor", f"/dicom-web/studies/{world.beta[0].study}").status_code == 403


def test_no_credentials_and_bad_credentials_get_401(world: World) -> None:
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic eDp5"}):
        response = world.client.get("/dicom-web/studies", headers=headers)
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert "0020000D" not in response.text
    page = world.client.get("/", headers={"Accept": "text/html"}, follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")


def _stow_body(ds_bytes: bytes) -> tuple[bytes, str]:
    boundary = new_boundary()
    body = encode_multipart(boundary, [("application/dicom", ds_bytes)])
    return body, f'multipart/related; type="application/dicom"; boundary={boundary}'


def test_stow_cannot_reach_beta(world: World) -> None:
    spec = StudySpec(patient_id="PA-NEW")
    body, ctype = _stow_body(to_bytes(next(ct_series(spec, slices=1, rows=8, cols=8))))
    headers = {"Authorization": f"Bearer {world.tokens['tech_a']}", "Content-Type": ctype}
    to_beta = world.client.post(
        "/dicom-web/facilities/Beta Clinic/studies", content=body, headers=headers
    )
    to_nowhere = world.client.post(
        "/dicom-web/facilities/Delta Nowhere/studies", content=body, headers=headers
    )
    assert to_beta.status_code == to_nowhere.status_code == 404
    assert to_beta.json()["detail"].replace("Beta Clinic", "X") == to_nowhere.json()[
        "detail"
    ].replace("Delta Nowhere", "X")
    # An instance claiming Beta's study: refused, and the answer does not say whose it is.
    intruder = StudySpec(patient_id="PA-1", study_uid=world.beta[0].study)
    body, ctype = _stow_body(to_bytes(next(ct_series(intruder, slices=1, rows=8, cols=8))))
    refused = world.client.post(
        "/dicom-web/studies", content=body, headers={**headers, "Content-Type": ctype}
    )
    assert refused.status_code == 409
    assert "facility" not in refused.text.lower() and "Beta" not in refused.text
    assert len(world.platform.archive.locate(Level.STUDY, [world.beta[0].study])) == 2
    # Their own facility works, by name or by default.
    for url in ("/dicom-web/facilities/Alpha Hospital/studies", "/dicom-web/studies"):
        body, ctype = _stow_body(to_bytes(next(ct_series(StudySpec(), slices=1, rows=8, cols=8))))
        assert (
            world.client.post(
                url, content=body, headers={**headers, "Content-Type": ctype}
            ).status_code
            == 200
        )


def test_study_list_shows_alpha_only(world: World) -> None:
    page = world.get("tech_a", "/?patient_name=*")
    assert page.status_code == 200
    assert "ALPHA" in page.text
    assert "BETA" not in page.text


def test_me_reports_scope(world: World) -> None:
    me = world.get("rad_a", "/api/me").json()
    assert me["facilities"] == ["Alpha Hospital"] and me["role"] == "radiologist"
    assert world.get("admin", "/api/me").json()["facilities"] is None


# -- DIMSE --------------------------------------------------------------------------------


def _find(port: int, aet: str, level: str, model: str, **keys: str) -> list[Dataset]:
    ds = Dataset()
    ds.QueryRetrieveLevel = level
    for k, v in {"StudyInstanceUID": "", "PatientID": "", "PatientName": "", **keys}.items():
        setattr(ds, k, v)
    with association(port, [build_context(model)], ae_title=aet) as assoc:
        return [
            ident
            for status, ident in assoc.send_c_find(ds, model)
            if status.Status in (0xFF00, 0xFF01)
        ]


def test_dimse_find_sees_alpha_only(world: World) -> None:
    port = world.dimse.port
    alpha = world.platform.index.facility_by_name("Alpha Hospital")
    assert alpha is not None
    query = Query(Level.STUDY, facility_ids=frozenset({alpha.id}))
    mine = {str(r["StudyInstanceUID"]) for r in world.platform.archive.search(query)}
    assert {a.study for a in world.alpha} <= mine
    for keys in ({}, {"PatientID": "*"}, {"PatientName": "*"}, {"PatientID": SHARED_PID}):
        found = {
            str(d.StudyInstanceUID) for d in _find(port, "ALPHA", "STUDY", STUDY_ROOT_FIND, **keys)
        }
        assert found <= mine, keys
        assert found, keys
    for b in world.beta:
        assert _find(port, "ALPHA", "STUDY", STUDY_ROOT_FIND, StudyInstanceUID=b.study) == []
    patients = _find(port, "ALPHA", "PATIENT", PATIENT_ROOT_FIND, PatientID=SHARED_PID)
    assert [str(p.PatientName) for p in patients] == ["ALPHA^SAM"]


def _get_statuses(port: int, aet: str, study: str) -> list[tuple[int, int]]:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study
    with association(port, [build_context(STUDY_ROOT_GET)], ae_title=aet) as assoc:
        return [
            (s.Status, int(getattr(s, "NumberOfCompletedSuboperations", 0) or 0))
            for s, _ in assoc.send_c_get(ds, STUDY_ROOT_GET)
        ]


def _move_statuses(port: int, aet: str, study: str, destination: str) -> list[int]:
    ds = Dataset()
    ds.QueryRetrieveLevel = "STUDY"
    ds.StudyInstanceUID = study
    with association(port, [build_context(STUDY_ROOT_MOVE)], ae_title=aet) as assoc:
        return [s.Status for s, _ in assoc.send_c_move(ds, destination, STUDY_ROOT_MOVE)]


def test_dimse_retrieve_of_beta_is_retrieve_of_nothing(world: World) -> None:
    port = world.dimse.port
    for b in world.beta:
        assert _get_statuses(port, "ALPHA", b.study) == _get_statuses(port, "ALPHA", generate_uid())
        assert _move_statuses(port, "ALPHA", b.study, "ALPHADEST") == _move_statuses(
            port, "ALPHA", generate_uid(), "ALPHADEST"
        )
    # Alpha's data may not be sent to Beta's node: as unknown as a destination that does not exist.
    a = world.alpha[0].study
    assert _move_statuses(port, "ALPHA", a, "BETADEST") == _move_statuses(
        port, "ALPHA", a, "NOSUCHAE"
    )
    assert _move_statuses(port, "ALPHA", a, "BETADEST")[-1] == 0xA801


def _associates(port: int, aet: str) -> tuple[bool, Any]:
    ae = AE(ae_title=aet)
    ae.acse_timeout = 10
    assoc = ae.associate(
        "127.0.0.1", port, [build_context("1.2.840.10008.1.1")], ae_title="TELERAD"
    )
    established = assoc.is_established
    result = (
        (assoc.acceptor.primitive.result, assoc.acceptor.primitive.diagnostic)
        if not established and assoc.acceptor.primitive
        else None
    )
    if established:
        assoc.release()
    return established, result


def test_unknown_and_spoofed_ae_titles_are_rejected(world: World) -> None:
    port = world.dimse.port
    assert _associates(port, "ALPHA")[0]
    stranger = _associates(port, "STRANGER")
    spoofed = _associates(port, "GAMMA")  # registered, but for 10.66.0.0/16, not loopback
    assert not stranger[0] and not spoofed[0]
    assert stranger[1] == spoofed[1]  # the same rejection: probing learns nothing
    records = [r for r in world.platform.audit.repository.records() if r.event_id == "110113"]
    assert any("association rejected" in r.detail and r.actor_id == "GAMMA" for r in records)


def test_probes_are_audited_and_the_chain_holds(world: World) -> None:
    world.get("tech_a", f"/dicom-web/studies/{world.beta[1].study}/metadata")
    records = list(world.platform.audit.repository.records())
    mine = [r for r in records if r.actor_id == "tech_a"]
    assert any(r.event_id == "110112" for r in mine)  # queries
    assert any(r.study_uid == world.beta[1].study and r.outcome == 4 for r in mine)
    assert world.platform.audit.verify().ok


def test_break_glass_opens_one_study_with_a_reason(world: World) -> None:
    auth = world.platform.auth
    user = auth.create_user("rad_bg", Role.RADIOLOGIST)
    token = auth.issue_token(user)
    headers = {"Authorization": f"Bearer {token}"}
    target, untouched = world.beta[0], world.beta[1]
    url = f"/dicom-web/studies/{target.study}/metadata"
    assert world.client.get(url, headers=headers).status_code == 404
    short = world.client.post(
        "/api/break-glass",
        json={"study_instance_uid": target.study, "reason": "urgent"},
        headers=headers,
    )
    assert short.status_code == 422  # a reason of at least 10 characters
    nowhere = world.client.post(
        "/api/break-glass",
        json={"study_instance_uid": "1.2.3.4.5", "reason": "patient in resus, prior CT needed"},
        headers=headers,
    )
    assert nowhere.status_code == 404
    granted = world.client.post(
        "/api/break-glass",
        json={
            "study_instance_uid": target.study,
            "reason": "patient in resus, prior CT needed",
            "minutes": 30,
        },
        headers=headers,
    )
    assert granted.status_code == 200, granted.text
    assert world.client.get(url, headers=headers).status_code == 200
    other = f"/dicom-web/studies/{untouched.study}/metadata"
    assert world.client.get(other, headers=headers).status_code == 404
    found = world.client.get("/dicom-web/studies", headers=headers).json()
    assert [r["0020000D"]["Value"][0] for r in found] == [target.study]
    report = world.get("auditor", "/api/break-glass").json()
    assert any(
        g["username"] == "rad_bg" and g["study_instance_uid"] == target.study for g in report
    )
    assert world.get("tech_a", "/api/break-glass").status_code == 403
