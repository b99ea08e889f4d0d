"""The archive index (``services.ports.Index``): what the fake and SqlIndex both do."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from tests.fakes.instances import blob, header
from tests.fakes.world import Stores

from telerad.domain.model import ConflictingHierarchy, Level, Node
from telerad.domain.query import Exact, Query, QueryError, Range, UidList, Wildcard


def test_facilities_are_unique_by_name_and_ae_title(stores: Stores) -> None:
    index = stores.index
    north = index.add_facility("North", "NORTH", country="US", state="CA", host="10.0.0.0/24")
    index.add_facility("East")
    index.add_facility("West")  # two without an AE title
    assert index.facility_by_name("North") == north
    assert index.facility_by_ae("NORTH") == north
    assert index.facility_by_id(north.id) == north and north.jurisdiction == "US-CA"
    assert index.facility_by_name("South") is None and index.facility_by_id(999) is None
    assert [f.name for f in index.list_facilities()] == ["East", "North", "West"]
    with pytest.raises(IntegrityError):
        index.add_facility("North")
    with pytest.raises(IntegrityError):
        index.add_facility("South", "NORTH")
    moved = index.update_facility(north.id, host="", region="eu")
    assert (moved.host, moved.region, moved.ae_title) == ("", "eu", "NORTH")
    assert index.facility_by_id(north.id) == moved


def test_a_node_registered_again_is_updated_in_place(stores: Stores) -> None:
    index = stores.index
    first = index.add_node(Node("PACS2", "10.0.0.2", 104))
    index.add_node(Node("ARCHIVE", "10.0.0.3", 104))
    again = index.add_node(Node("PACS2", "10.0.0.9", 11112, cert_sha256="ab" * 32))
    assert again.id == first.id and again.port == 11112
    assert index.node_by_ae("PACS2") == again
    assert index.node_by_ae("NOBODY") is None
    assert [n.ae_title for n in index.list_nodes()] == ["ARCHIVE", "PACS2"]


def test_an_instance_is_indexed_once_in_one_facility_study_and_series(stores: Stores) -> None:
    index = stores.index
    north, south = index.add_facility("North").id, index.add_facility("South").id
    assert index.add_instance(north, header("1.1", "1.1.1", "1.1.1.1"), blob("1.1.1.1"))
    assert not index.add_instance(north, header("1.1", "1.1.1", "1.1.1.1"), blob("1.1.1.1"))
    with pytest.raises(ConflictingHierarchy, match="StudyInstanceUID"):
        index.add_instance(south, header("1.1", "1.1.9", "1.1.9.1"), blob("1.1.9.1"))
    with pytest.raises(ConflictingHierarchy, match="SeriesInstanceUID"):
        index.add_instance(north, header("1.2", "1.1.1", "1.2.1.1"), blob("1.2.1.1"))
    found = index.find_instance("1.1.1.1")
    assert found is not None
    assert (found.facility_id, found.study_instance_uid, found.series_instance_uid) == (
        north,
        "1.1",
        "1.1.1",
    )
    assert (found.blob_key, found.sha256, found.size) == (
        blob("1.1.1.1").key,
        blob("1.1.1.1").sha256,
        100,
    )
    assert index.find_instance("9.9") is None
    assert index.study_facility("1.1") == north and index.study_facility("1.2") is None
    assert index.study_facilities(["1.1", "1.2", "1.1"]) == {"1.1": north}
    assert index.counts() == {"patients": 1, "studies": 1, "series": 1, "instances": 1}


def test_nothing_is_kept_when_the_step_before_commit_fails(stores: Stores) -> None:
    index = stores.index
    fid = index.add_facility("North").id
    called = []

    def fail() -> None:
        called.append(True)
        raise OSError("the blob could not be made durable")

    with pytest.raises(OSError):
        index.add_instance(fid, header("1.1", "1.1.1", "1.1.1.1"), blob("1.1.1.1"), fail)
    assert called == [True]
    assert index.find_instance("1.1.1.1") is None
    assert index.counts()["studies"] == 0
    assert index.add_instance(fid, header("1.1", "1.1.1", "1.1.1.1"), blob("1.1.1.1"), called.pop)


def test_a_batch_is_indexed_whole_or_not_at_all(stores: Stores) -> None:
    index = stores.index
    fid = index.add_facility("North").id
    index.add_instance(fid, header("1.1", "1.1.1", "1.1.1.1"), blob("1.1.1.1"))
    twice = [(header("1.1", "1.1.1", f"1.1.1.{n}"), blob(f"1.1.1.{n}")) for n in (2, 3, 2)]
    assert not index.add_instances(fid, twice)
    again = [(header("1.1", "1.1.1", f"1.1.1.{n}"), blob(f"1.1.1.{n}")) for n in (4, 1)]
    assert not index.add_instances(fid, again)
    assert index.counts()["instances"] == 1
    fresh = [(header("1.2", f"1.2.{n}", f"1.2.{n}.1"), blob(f"1.2.{n}.1")) for n in (1, 2)]
    assert index.add_instances(fid, fresh)
    assert index.add_instances(fid, [])
    assert index.counts() == {"patients": 1, "studies": 2, "series": 3, "instances": 3}


def _archive(stores: Stores) -> tuple[int, int]:
    """Two facilities: North holds DOE^JANE's CT+SR study and ROE^JOHN's MR; South one CT."""
    index = stores.index
    north, south = index.add_facility("North").id, index.add_facility("South").id
    jane = {"PatientID": "P1", "PatientName": "DOE^JANE", "PatientBirthDate": "19700101"}
    rows = [
        (north, header("1.1", "1.1.1", "1.1.1.2", InstanceNumber=2, **jane)),
        (north, header("1.1", "1.1.1", "1.1.1.1", InstanceNumber=1, **jane)),
        (north, header("1.1", "1.1.2", "1.1.2.1", Modality="SR", SeriesNumber=900, **jane)),
        (
            north,
            header(
                "1.2", "1.2.1", "1.2.1.1", PatientID="P2", PatientName="ROE^JOHN^Q",
                Modality="MR", StudyDate="20260301", StudyTime="101500", AccessionNumber="ACC2",
                ReferringPhysicianName="HOUSE^GREGORY",
            ),
        ),
        (south, header("1.3", "1.3.1", "1.3.1.1", PatientID="P1", StudyDate="20260301")),
    ]  # fmt: skip
    for fid, h in rows:
        if h.StudyInstanceUID == "1.1":
            h.StudyDate, h.StudyTime, h.AccessionNumber = "20260201", "080000", "ACC1"
        assert index.add_instance(fid, h, blob(h.SOPInstanceUID, fid))
    return north, south


def _uids(stores: Stores, level: Level = Level.STUDY, **query: object) -> list[str]:
    key = {
        Level.PATIENT: "PatientID",
        Level.STUDY: "StudyInstanceUID",
        Level.SERIES: "SeriesInstanceUID",
        Level.IMAGE: "SOPInstanceUID",
    }[level]
    return [str(r[key]) for r in stores.index.search(Query(level, **query))]  # type: ignore[arg-type]


def test_search_matches_as_dicom_query_says(stores: Stores) -> None:
    _archive(stores)

    def studies(fuzzy: bool = False, **matches: object) -> list[str]:
        return _uids(stores, matches=matches, fuzzy=fuzzy)

    assert studies() == ["1.1", "1.2", "1.3"]  # in the order indexed
    assert studies(PatientName=Exact("doe^jane")) == ["1.1", "1.3"]  # any case, any separator
    assert studies(PatientName=Exact("DOE JANE")) == ["1.1", "1.3"]
    assert studies(PatientName=Exact("DOE")) == []
    assert studies(PatientName=Wildcard("ROE*")) == ["1.2"]
    assert studies(PatientName=Wildcard("r?e*")) == ["1.2"]
    assert studies(fuzzy=True, PatientName=Exact("jan")) == ["1.1", "1.3"]  # a later name part
    assert studies(fuzzy=True, PatientName=Exact("ane")) == []
    assert studies(ReferringPhysicianName=Wildcard("house*")) == ["1.2"]
    assert studies(PatientID=Exact("P1")) == ["1.1", "1.3"]
    assert studies(AccessionNumber=Wildcard("ACC*")) == ["1.1", "1.2"]
    assert studies(AccessionNumber=Wildcard("acc*")) == []  # case counts outside names
    assert studies(StudyDate=Range("20260215", None)) == ["1.2", "1.3"]
    assert studies(StudyDate=Range(None, "20260201")) == ["1.1"]  # empty dates never match
    assert studies(StudyTime=Range("1000", "1015")) == ["1.2"]  # the whole last minute
    assert studies(StudyInstanceUID=UidList(("1.3", "1.1", "9.9"))) == ["1.1", "1.3"]
    assert studies(ModalitiesInStudy=Exact("SR")) == ["1.1"]
    assert studies(ModalitiesInStudy=UidList(("MR", "SR"))) == ["1.1", "1.2"]
    assert studies(ModalitiesInStudy=Wildcard("M*")) == ["1.2"]
    assert studies(NumberOfStudyRelatedSeries=Exact("2")) == ["1.1"]
    assert studies(PatientBirthDate=Exact("19700101"), PatientID=Exact("P1")) == ["1.1"]


def test_search_returns_the_level_s_attributes_with_counts(stores: Stores) -> None:
    _archive(stores)
    [study] = stores.index.search(Query(Level.STUDY, matches={"StudyInstanceUID": Exact("1.1")}))
    assert study["ModalitiesInStudy"] == ["CT", "SR"]
    assert (study["NumberOfStudyRelatedSeries"], study["NumberOfStudyRelatedInstances"]) == (2, 3)
    assert (study["PatientName"], study["AccessionNumber"]) == ("DOE^JANE", "ACC1")
    assert set(study) == set(Query(Level.STUDY).return_keys())
    [patient, _] = stores.index.search(Query(Level.PATIENT, matches={"PatientID": Exact("P1")}))
    assert patient["NumberOfPatientRelatedStudies"] == 1  # P1 at North; South's P1 is another
    series = stores.index.search(
        Query(
            Level.SERIES, matches={"StudyInstanceUID": Exact("1.1")}, returns={"BodyPartExamined"}
        )
    )
    assert [(s["SeriesNumber"], s["NumberOfSeriesRelatedInstances"]) for s in series] == [
        (1, 2),
        (900, 1),
    ]
    assert _uids(stores, Level.SERIES, matches={"SeriesNumber": Exact("900")}) == ["1.1.2"]
    assert _uids(stores, Level.SERIES, matches={"Modality": Exact("MR")}) == ["1.2.1"]
    images = _uids(stores, Level.IMAGE, matches={"SeriesInstanceUID": Exact("1.1.1")})
    assert images == ["1.1.1.2", "1.1.1.1"]  # in the order indexed
    assert _uids(stores, Level.IMAGE, matches={"InstanceNumber": UidList(("1", "7"))}) == [
        "1.1.1.1"
    ]


@pytest.mark.parametrize(
    ("level", "matches", "words"),
    [
        (Level.STUDY, {"SeriesInstanceUID": Exact("1.1.1")}, "cannot be matched"),
        (Level.SERIES, {"SeriesNumber": Exact("one")}, "must be a number"),
        (Level.SERIES, {"SeriesNumber": UidList(("1", "x"))}, "must be numbers"),
        (Level.SERIES, {"SeriesNumber": Wildcard("1*")}, "does not support"),
    ],
)
def test_queries_the_index_cannot_answer_are_refused(
    stores: Stores, level: Level, matches: dict[str, object], words: str
) -> None:
    with pytest.raises(QueryError, match=words):  # also with nothing indexed yet
        stores.index.search(Query(level, matches=matches))  # type: ignore[arg-type]


def test_search_is_scoped_by_facility_with_break_glass_grants(stores: Stores) -> None:
    north, south = _archive(stores)
    assert _uids(stores, facility_ids=frozenset({south})) == ["1.3"]
    assert _uids(stores, facility_ids=frozenset()) == []
    granted = _uids(stores, facility_ids=frozenset({south}), granted_studies=frozenset({"1.2"}))
    assert granted == ["1.2", "1.3"]
    images = _uids(stores, Level.IMAGE, facility_ids=frozenset({south}), granted_studies={"1.1"})
    assert images == ["1.1.1.2", "1.1.1.1", "1.1.2.1", "1.3.1.1"]
    patients = _uids(stores, Level.PATIENT, facility_ids=frozenset({north}))
    assert patients == ["P1", "P2"]
    assert _uids(stores, Level.PATIENT, facility_ids=frozenset({south})) == ["P1"]


def test_newest_first_limit_and_offset(stores: Stores) -> None:
    _archive(stores)
    assert _uids(stores, newest_first=True) == ["1.2", "1.3", "1.1"]  # date, time, then id
    assert _uids(stores, newest_first=True, limit=2) == ["1.2", "1.3"]
    assert _uids(stores, newest_first=True, limit=2, offset=2) == ["1.1"]
    assert _uids(stores, offset=1) == ["1.2", "1.3"]
    assert [s["StudyInstanceUID"] for s in stores.index.iter_studies()] == ["1.1", "1.2", "1.3"]


def test_instances_in_series_and_instance_order_within_scope(stores: Stores) -> None:
    north, south = _archive(stores)

    def sops(
        level: Level, uids: list[str], facility_ids: frozenset[int] | None = None
    ) -> list[str]:
        return [i.sop_instance_uid for i in stores.index.instances(level, uids, facility_ids)]

    assert sops(Level.STUDY, ["1.1"]) == ["1.1.1.1", "1.1.1.2", "1.1.2.1"]
    assert sops(Level.SERIES, ["1.1.2", "1.2.1"]) == ["1.2.1.1", "1.1.2.1"]  # series 1, 900
    assert sops(Level.IMAGE, ["1.3.1.1", "9.9"]) == ["1.3.1.1"]
    assert sops(Level.PATIENT, ["P1"]) == ["1.1.1.1", "1.1.1.2", "1.3.1.1", "1.1.2.1"]
    assert sops(Level.PATIENT, ["P1"], frozenset({south})) == ["1.3.1.1"]
    assert sops(Level.STUDY, ["1.1"], frozenset({south})) == []
    [first] = stores.index.instances(Level.IMAGE, ["1.1.1.1"], frozenset({north}))
    assert (first.instance_number, first.sop_class_uid) == (1, header("", "", "").SOPClassUID)


def test_metadata_keeps_its_first_copy_of_indexed_instances(stores: Stores) -> None:
    _archive(stores)
    index = stores.index
    index.put_metadata({"1.1.1.1": '{"first": 1}', "9.9.9": "{}"})
    index.put_metadata({"1.1.1.1": '{"second": 2}', "1.2.1.1": "{}"})
    index.put_metadata({})
    assert index.get_metadata(["1.1.1.1", "1.2.1.1", "9.9.9", "1.3.1.1"]) == {
        "1.1.1.1": '{"first": 1}',
        "1.2.1.1": "{}",
    }
    assert index.get_metadata([]) == {}
