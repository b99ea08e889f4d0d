"""C-FIND against a live ``telerad serve``: dcmtk findscu and pynetdicom as peers."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import build_context
from tests.conftest import LiveServer, require_tool
from tests.fakes import FindEvent
from tests.integration.test_dimse_support import association, dcmtk, storescu

from telerad.adapters.dimse.contexts import PATIENT_ROOT_FIND, STUDY_ROOT_FIND
from telerad.adapters.dimse.find import handle_find
from telerad.bootstrap import Platform
from telerad.synthetic import StudySpec, ct_series, mr_series, to_bytes


@dataclass
class Corpus:
    token: str
    alice: str  # PatientID
    bob: str
    studies: dict[str, StudySpec]  # name -> spec
    series: dict[str, list[str]]  # study name -> series UIDs
    sops: dict[str, list[str]]  # series UID -> SOP Instance UIDs


def _write(folder: Path, datasets: list[Dataset], corpus: Corpus, name: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, ds in enumerate(datasets):
        path = folder / f"{name}-{i}.dcm"
        path.write_bytes(to_bytes(ds))
        paths.append(path)
        corpus.series.setdefault(name, [])
        if ds.SeriesInstanceUID not in corpus.series[name]:
            corpus.series[name].append(ds.SeriesInstanceUID)
        corpus.sops.setdefault(ds.SeriesInstanceUID, []).append(ds.SOPInstanceUID)
    return paths


@pytest.fixture(scope="module")
def corpus(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Corpus:
    require_tool("findscu")
    token = generate_uid("2.25.")[-8:]
    alice, bob = f"QA{token}", f"QB{token}"
    specs = {
        "ct2020": StudySpec(
            patient_id=alice,
            patient_name=f"Q{token}^ALICE",
            study_date="20200115",
            accession=f"A{token}1",
            description="CT CHEST",
        ),
        "mr2021": StudySpec(
            patient_id=alice,
            patient_name=f"Q{token}^ALICE",
            study_date="20210620",
            accession=f"A{token}2",
            description="MR BRAIN",
        ),
        "ct2022": StudySpec(
            patient_id=bob,
            patient_name=f"Q{token}^BOB",
            study_date="20220301",
            accession=f"A{token}3",
            description="CT ABDOMEN",
        ),
    }
    corpus = Corpus(token, alice, bob, specs, {}, {})
    folder = tmp_path_factory.mktemp("query")
    files: list[Path] = []
    files += _write(
        folder, list(ct_series(specs["ct2020"], slices=3, rows=16, cols=16)), corpus, "ct2020"
    )
    files += _write(
        folder, list(mr_series(specs["mr2021"], slices=2, rows=16, cols=16)), corpus, "mr2021"
    )
    files += _write(
        folder,
        list(ct_series(specs["ct2022"], slices=2, rows=16, cols=16, number=2)),
        corpus,
        "ct2022",
    )
    result = storescu(live_server.dicom_port, files, aet="QUERYSCU")
    assert result.returncode == 0, result.stderr
    return corpus


def findscu(
    server: LiveServer, tmp_path: Path, model: str, keys: list[str], aet: str = "QUERYSCU"
) -> list[Dataset]:
    out = tmp_path / f"find-{generate_uid('2.25.')[-6:]}"
    out.mkdir()
    args = ["-aet", aet, "-aec", "TELERAD", model, "-X", "-od", str(out)]
    for key in keys:
        args += ["-k", key]
    result = dcmtk("findscu", *args, "127.0.0.1", str(server.dicom_port))
    assert result.returncode == 0, result.stdout + result.stderr
    return [pydicom.dcmread(p) for p in sorted(out.glob("rsp*.dcm"))]


def test_study_level_wildcard_returns_requested_keys(
    live_server: LiveServer, corpus: Corpus, tmp_path: Path
) -> None:
    found = findscu(
        live_server,
        tmp_path,
        "-S",
        [
            "QueryRetrieveLevel=STUDY",
            f"PatientName=Q{corpus.token}^AL*",
            "StudyInstanceUID",
            "StudyDate",
            "ModalitiesInStudy",
            "NumberOfStudyRelatedInstances",
            "AccessionNumber",
        ],
    )
    by_uid = {str(ds.StudyInstanceUID): ds for ds in found}
    assert set(by_uid) == {corpus.studies["ct2020"].study_uid, corpus.studies["mr2021"].study_uid}
    ct = by_uid[corpus.studies["ct2020"].study_uid]
    assert ct.StudyDate == "20200115"
    assert ct.ModalitiesInStudy == "CT"
    assert int(ct.NumberOfStudyRelatedInstances) == 3
    assert ct.AccessionNumber == f"A{corpus.token}1"
    assert ct.QueryRetrieveLevel == "STUDY"
    assert ct.RetrieveAETitle == "TELERAD"
    assert "StudyDescription" not in ct  # only what was asked for


def test_date_range_and_patient_id_wildcard(
    live_server: LiveServer, corpus: Corpus, tmp_path: Path
) -> None:
    keys = ["QueryRetrieveLevel=STUDY", f"PatientID=Q?{corpus.token}", "StudyInstanceUID"]
    found = findscu(live_server, tmp_path, "-S", [*keys, "StudyDate=20200101-20211231"])
    assert {str(ds.StudyInstanceUID) for ds in found} == {
        corpus.studies["ct2020"].study_uid,
        corpus.studies["mr2021"].study_uid,
    }
    open_ended = findscu(live_server, tmp_path, "-S", [*keys, "StudyDate=20210101-"])
    assert {str(ds.StudyInstanceUID) for ds in open_ended} == {
        corpus.studies["mr2021"].study_uid,
        corpus.studies["ct2022"].study_uid,
    }
    single = findscu(live_server, tmp_path, "-S", [*keys, "StudyDate=20220301"])
    assert [str(ds.StudyInstanceUID) for ds in single] == [corpus.studies["ct2022"].study_uid]


def test_patient_root_patient_level(
    live_server: LiveServer, corpus: Corpus, tmp_path: Path
) -> None:
    found = findscu(
        live_server,
        tmp_path,
        "-P",
        [
            "QueryRetrieveLevel=PATIENT",
            f"PatientID=*{corpus.token}",
            "PatientName",
            "NumberOfPatientRelatedStudies",
        ],
    )
    by_id = {str(ds.PatientID): ds for ds in found}
    assert set(by_id) == {corpus.alice, corpus.bob}
    assert str(by_id[corpus.alice].PatientName) == f"Q{corpus.token}^ALICE"
    assert int(by_id[corpus.alice].NumberOfPatientRelatedStudies) == 2
    # Patient Root, STUDY level under one patient.
    studies = findscu(
        live_server,
        tmp_path,
        "-P",
        [
            "QueryRetrieveLevel=STUDY",
            f"PatientID={corpus.bob}",
            "StudyInstanceUID",
            "StudyDescription",
        ],
    )
    assert [(str(s.StudyInstanceUID), s.StudyDescription) for s in studies] == [
        (corpus.studies["ct2022"].study_uid, "CT ABDOMEN")
    ]


def test_series_and_image_levels(live_server: LiveServer, corpus: Corpus, tmp_path: Path) -> None:
    study_uid = corpus.studies["mr2021"].study_uid
    series = findscu(
        live_server,
        tmp_path,
        "-S",
        [
            "QueryRetrieveLevel=SERIES",
            f"StudyInstanceUID={study_uid}",
            "SeriesInstanceUID",
            "Modality",
            "NumberOfSeriesRelatedInstances",
        ],
    )
    assert [str(s.SeriesInstanceUID) for s in series] == corpus.series["mr2021"]
    assert series[0].Modality == "MR"
    assert int(series[0].NumberOfSeriesRelatedInstances) == 2
    series_uid = corpus.series["mr2021"][0]
    images = findscu(
        live_server,
        tmp_path,
        "-S",
        [
            "QueryRetrieveLevel=IMAGE",
            f"StudyInstanceUID={study_uid}",
            f"SeriesInstanceUID={series_uid}",
            "SOPInstanceUID",
            "InstanceNumber",
            "SOPClassUID",
        ],
    )
    assert sorted(str(i.SOPInstanceUID) for i in images) == sorted(corpus.sops[series_uid])
    assert sorted(int(i.InstanceNumber) for i in images) == [1, 2]


def test_uid_list_matching(live_server: LiveServer, corpus: Corpus, tmp_path: Path) -> None:
    wanted = [corpus.studies["ct2020"].study_uid, corpus.studies["ct2022"].study_uid]
    found = findscu(
        live_server,
        tmp_path,
        "-S",
        ["QueryRetrieveLevel=STUDY", "StudyInstanceUID=" + "\\".join(wanted), "PatientID"],
    )
    assert sorted(str(ds.StudyInstanceUID) for ds in found) == sorted(wanted)


def _cfind(
    port: int, identifier: Dataset, model: str = STUDY_ROOT_FIND, aet: str = "QUERYSCU"
) -> list[tuple[Dataset, Dataset | None]]:
    with association(port, [build_context(model)], ae_title=aet) as assoc:
        return list(assoc.send_c_find(identifier, model))


def test_unknown_and_sequence_keys_come_back_empty(live_server: LiveServer, corpus: Corpus) -> None:
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = corpus.bob
    query.StudyInstanceUID = ""
    query.StationName = ""  # not indexed
    query.ProcedureCodeSequence = []
    query.PatientName = ""
    responses = _cfind(live_server.dicom_port, query)
    pending = [ident for status, ident in responses if status.Status == 0xFF00]
    assert responses[-1][0].Status == 0x0000
    assert len(pending) == 1
    ident = pending[0]
    assert ident is not None
    assert ident.StudyInstanceUID == corpus.studies["ct2022"].study_uid
    assert ident.StationName in ("", None)
    assert "ProcedureCodeSequence" in ident and len(ident.ProcedureCodeSequence) == 0
    assert str(ident.PatientName) == f"Q{corpus.token}^BOB"


@pytest.mark.parametrize(
    ("keys", "model", "status"),
    [
        ({"PatientID": "X"}, STUDY_ROOT_FIND, 0xA900),  # no Query/Retrieve Level
        ({"QueryRetrieveLevel": "FRAME"}, STUDY_ROOT_FIND, 0xA900),
        ({"QueryRetrieveLevel": "PATIENT", "PatientID": "X"}, STUDY_ROOT_FIND, 0xA900),
        ({"QueryRetrieveLevel": "STUDY", "SOPInstanceUID": "1.2.3"}, STUDY_ROOT_FIND, 0xA900),
        ({"QueryRetrieveLevel": "STUDY", "StudyDate": "yesterday"}, STUDY_ROOT_FIND, 0xC000),
        ({"QueryRetrieveLevel": "STUDY", "StudyTime": "noon"}, PATIENT_ROOT_FIND, 0xC000),
    ],
)
@pytest.mark.filterwarnings("ignore:Invalid value")  # the test sets invalid values on purpose
def test_bad_identifiers_fail_with_a_comment(
    live_server: LiveServer, keys: dict[str, str], model: str, status: int
) -> None:
    query = Dataset()
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    responses = _cfind(live_server.dicom_port, query, model)
    assert len(responses) == 1
    final, ident = responses[0]
    assert final.Status == status
    assert final.ErrorComment
    assert ident is None
    # The server keeps answering.
    ok = Dataset()
    ok.QueryRetrieveLevel = "STUDY"
    ok.StudyInstanceUID = generate_uid("2.25.")
    assert _cfind(live_server.dicom_port, ok)[-1][0].Status == 0x0000


def test_facility_scope_follows_the_calling_ae(live_server: LiveServer, tmp_path: Path) -> None:
    token = generate_uid("2.25.")[-6:]
    clinic_ae, hub_ae = f"SITE{token}", f"HUB{token}"
    for args in (
        (
            "node",
            "add",
            clinic_ae,
            "--host",
            "127.0.0.1",
            "--port",
            "104",
            "--facility",
            f"Site {token}",
        ),
        ("node", "add", hub_ae, "--host", "127.0.0.1", "--port", "104"),
    ):
        assert live_server.telerad(*args).returncode == 0
    spec = StudySpec(patient_id=f"SC{token}")
    path = tmp_path / "ct.dcm"
    path.write_bytes(to_bytes(next(ct_series(spec, slices=1, rows=16, cols=16))))
    assert storescu(live_server.dicom_port, [path], aet=clinic_ae).returncode == 0
    keys = ["QueryRetrieveLevel=STUDY", f"StudyInstanceUID={spec.study_uid}"]
    assert len(findscu(live_server, tmp_path, "-S", keys, aet=clinic_ae)) == 1
    assert len(findscu(live_server, tmp_path, "-S", keys, aet=hub_ae)) == 1
    assert findscu(live_server, tmp_path, "-S", keys, aet="STRANGER") == []


def test_cancel_stops_the_matches(platform: Platform) -> None:
    """C-CANCEL: the handler stops at the next check and answers Cancel (0xFE00)."""
    facility = platform.default_facility()
    for _ in range(4):
        ds = next(ct_series(StudySpec(patient_id="CANCEL1"), slices=1, rows=8, cols=8))
        assert platform.archive.store(facility.id, to_bytes(ds)).ok
    identifier = Dataset()
    identifier.QueryRetrieveLevel = "STUDY"
    identifier.PatientID = "CANCEL1"
    identifier.StudyInstanceUID = ""
    uncancelled = [
        s for s, _ in handle_find(FindEvent(identifier, STUDY_ROOT_FIND, "ANY", 99), platform)
    ]
    assert uncancelled == [0xFF00] * 4
    statuses = [
        s for s, _ in handle_find(FindEvent(identifier, STUDY_ROOT_FIND, "ANY", 2), platform)
    ]
    assert statuses == [0xFF00, 0xFE00]
