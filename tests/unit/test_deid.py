"""The Basic Profile and its options on real sample files and a generated CT series."""

from __future__ import annotations

import copy
import datetime as dt
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydicom import dcmread, dcmwrite
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from telerad.domain.deid import (
    DUMMY_TEXT,
    TABLE,
    Action,
    Keys,
    Option,
    Profile,
    ProfileError,
    burned_in_risk,
    deidentify,
)
from telerad.domain.uids import is_valid_uid
from telerad.synthetic import StudySpec, ct_series

KEYS = Keys(b"k" * 32, "Facility A")
SAMPLES = ["CT_small.dcm", "MR_small.dcm", "US1_UNCR.dcm", "SC_rgb.dcm", "JPEG2000.dcm"]
ZERO = (Action.ZERO, Action.REMOVE_OR_ZERO)
DUMMY = (Action.DUMMY, Action.REMOVE_OR_DUMMY, Action.ZERO_OR_DUMMY, Action.REMOVE_ZERO_OR_DUMMY)
KIND_UIDS = {"SOPClassUID", "ReferencedSOPClassUID"}


def ct_list(spec: StudySpec, slices: int = 1, rows: int = 8, cols: int = 8) -> list[Dataset]:
    return list(ct_series(spec, slices=slices, rows=rows, cols=cols))


def sample(name: str) -> Dataset:
    return dcmread(get_testdata_file(name))


def is_empty(value: object) -> bool:
    return value is None or value == "" or (isinstance(value, Sequence) and len(value) == 0)


def check_against_profile(before: Dataset, after: Dataset, profile: Profile, keys: Keys) -> None:
    """Attribute by attribute: what Table E.1-1 says for each element of ``before``."""
    for element in before:
        tag, old = element.tag, element.value
        where = element.keyword or str(tag)
        if tag.is_private:
            assert tag not in after, f"private {where} kept"
            continue
        if tag.group in range(0x5000, 0x6100):
            assert tag not in after, f"curve/overlay {where} kept"
            continue
        rule = TABLE.get(tag)
        if rule is None:
            if element.VR == "UI" and element.keyword not in KIND_UIDS and old:
                assert after[tag].value == keys.uid(old), where
            elif element.VR != "SQ":
                assert after[tag].value == old, f"{where} not in the table but changed"
            continue
        action = profile.action(rule)
        if action is Action.REMOVE:
            assert tag not in after, f"{where} should be removed"
        elif action in ZERO:
            assert tag in after and is_empty(after[tag].value), f"{where} should be empty"
        elif action in DUMMY:
            new = after[tag].value
            if element.VR == "UI":
                assert new == keys.uid(old), where
            elif element.VR == "SQ":
                assert len(new) == 0, where
            elif not is_empty(old):
                assert new != old, f"{where} should be a dummy"
            if element.VR in ("LO", "SH", "PN", "CS", "LT", "ST"):
                assert new == DUMMY_TEXT, where
        elif action is Action.REPLACE_UID:
            expected = old if Option.RETAIN_UIDS in profile.options else keys.uid(old)
            assert after[tag].value == expected, where
        elif action is Action.KEEP and element.VR != "SQ":
            assert after[tag].value == old, f"{where} should be kept"


@pytest.mark.parametrize("name", SAMPLES)
def test_basic_profile_attribute_by_attribute(name: str) -> None:
    before = sample(name)
    after = deidentify(copy.deepcopy(before), Profile(), KEYS)
    check_against_profile(before, after, Profile(), KEYS)
    assert after.PixelData == before.PixelData
    assert not [e for e in after.iterall() if e.tag.is_private]
    # No identifying value of the source survives anywhere in the encoded result.
    buffer = io.BytesIO()
    dcmwrite(buffer, after, enforce_file_format=False)
    encoded = buffer.getvalue().replace(before.PixelData, b"")
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber"):
        value = str(before.get(keyword, "") or "").encode()
        if len(value) >= 4:
            assert value not in encoded, f"{keyword} value left in {name}"
    assert str(before.SOPInstanceUID).encode() not in encoded
    assert str(before.StudyInstanceUID).encode() not in encoded


def test_ct_sample_specifics() -> None:
    before = sample("CT_small.dcm")
    assert before.PatientName and before.OtherPatientIDsSequence  # what the test relies on
    after = deidentify(copy.deepcopy(before), Profile(), KEYS)
    for keyword in ("PatientName", "PatientID", "PatientBirthDate", "StudyDate"):
        assert keyword in after and is_empty(after[keyword].value), keyword
    assert "OtherPatientIDsSequence" not in after
    assert after.InstitutionName == DUMMY_TEXT  # X/Z/D resolves to a dummy
    assert after.SOPClassUID == before.SOPClassUID
    assert after.StudyInstanceUID.startswith("2.25.")
    assert after.LongitudinalTemporalInformationModified == "REMOVED"


def test_method_recorded_with_cid_7050_codes() -> None:
    profile = Profile.of(["retain-uids", "clean-descriptors", "retain-patient-characteristics"])
    after = deidentify(sample("CT_small.dcm"), profile, KEYS)
    assert after.PatientIdentityRemoved == "YES"
    codes = [
        (i.CodeValue, i.CodingSchemeDesignator) for i in after.DeidentificationMethodCodeSequence
    ]
    assert codes == [("113100", "DCM"), ("113105", "DCM"), ("113108", "DCM"), ("113110", "DCM")]
    assert all(len(v) <= 64 for v in after.DeidentificationMethod)
    plain = deidentify(sample("CT_small.dcm"), Profile(), KEYS)
    assert [i.CodeValue for i in plain.DeidentificationMethodCodeSequence] == ["113100"]


def synthetic_series(slices: int = 5) -> list[Dataset]:
    series = ct_list(StudySpec(), slices=slices, rows=16, cols=16)
    # A derived slice points at another: its reference must follow the remapping.
    ref = Dataset()
    ref.ReferencedSOPClassUID = series[0].SOPClassUID
    ref.ReferencedSOPInstanceUID = series[0].SOPInstanceUID
    series[-1].ReferencedImageSequence = Sequence([ref])
    series[-1].SourceImageSequence = Sequence([copy.deepcopy(ref)])
    return series


def test_series_stays_together_and_references_follow() -> None:
    originals = synthetic_series()
    results = [deidentify(copy.deepcopy(ds), Profile(), KEYS) for ds in originals]
    for before, after in zip(originals, results, strict=True):
        check_against_profile(before, after, Profile(), KEYS)
        assert after.PixelData == before.PixelData
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID"):
        values = {str(ds[keyword].value) for ds in results}
        assert len(values) == 1 and values != {str(originals[0][keyword].value)}
    sop_uids = [str(ds.SOPInstanceUID) for ds in results]
    assert len(set(sop_uids)) == len(results)
    assert all(is_valid_uid(uid) for uid in sop_uids)
    last = results[-1]
    for sequence in ("ReferencedImageSequence", "SourceImageSequence"):
        item = last[sequence].value[0]
        assert item.ReferencedSOPInstanceUID == results[0].SOPInstanceUID
        assert item.ReferencedSOPClassUID == originals[0].SOPClassUID


def test_same_input_same_uids_other_secret_or_facility_other_uids() -> None:
    originals = synthetic_series(3)

    def uids(keys: Keys) -> list[str]:
        out = [deidentify(copy.deepcopy(ds), Profile(), keys) for ds in originals]
        return [str(ds.SOPInstanceUID) for ds in out] + [str(out[0].StudyInstanceUID)]

    first = uids(KEYS)
    assert uids(KEYS) == first
    assert not set(uids(Keys(b"other secret 32 bytes long......", "Facility A"))) & set(first)
    assert not set(uids(Keys(KEYS.secret, "Facility B"))) & set(first)


def test_retain_uids_keeps_them() -> None:
    before = sample("JPEG2000.dcm")
    after = deidentify(copy.deepcopy(before), Profile.of(["retain-uids"]), KEYS)
    assert after.SOPInstanceUID == before.SOPInstanceUID
    source = after.SourceImageSequence[0]
    assert source.ReferencedSOPInstanceUID == before.SourceImageSequence[0].ReferencedSOPInstanceUID


def test_reference_in_real_sample_sequence_is_remapped() -> None:
    before = sample("JPEG2000.dcm")
    old = before.SourceImageSequence[0].ReferencedSOPInstanceUID
    after = deidentify(copy.deepcopy(before), Profile(), KEYS)
    assert after.SourceImageSequence[0].ReferencedSOPInstanceUID == KEYS.uid(old)


def test_retain_options_keep_their_attributes() -> None:
    before = sample("CT_small.dcm")
    before.PatientAge, before.PatientWeight, before.DeviceSerialNumber = "042Y", "70", "SN123"
    profile = Profile.of(
        [
            "retain-patient-characteristics",
            "retain-device-identity",
            "retain-institution-identity",
            "retain-full-dates",
        ]
    )
    after = deidentify(copy.deepcopy(before), profile, KEYS)
    check_against_profile(before, after, profile, KEYS)
    for keyword in ("PatientSex", "PatientAge", "PatientWeight", "StationName"):
        assert after[keyword].value == before[keyword].value
    assert after.DeviceSerialNumber == "SN123"
    assert after.InstitutionName == before.InstitutionName
    assert after.StudyDate == before.StudyDate and after.ContentTime == before.ContentTime
    assert after.LongitudinalTemporalInformationModified == "UNMODIFIED"
    assert is_empty(after.PatientName) and "PatientID" in after and is_empty(after.PatientID)


def test_modified_dates_shift_consistently_per_patient() -> None:
    spec_a, spec_b = StudySpec(patient_id="P1"), StudySpec(patient_id="P1", study_date="20250301")
    other = StudySpec(patient_id="P2")
    profile = Profile.of(["retain-modified-dates"])
    shifted = {}
    for name, spec in (("a", spec_a), ("b", spec_b), ("other", other)):
        ds = ct_list(spec)[0]
        original = dt.date.fromisoformat(
            ds.StudyDate[:4] + "-" + ds.StudyDate[4:6] + "-" + ds.StudyDate[6:]
        )
        after = deidentify(ds, profile, KEYS)
        new = dt.datetime.strptime(after.StudyDate, "%Y%m%d").date()
        shifted[name] = (new - original).days
        assert after.LongitudinalTemporalInformationModified == "MODIFIED"
        assert "113107" in [i.CodeValue for i in after.DeidentificationMethodCodeSequence]
    assert shifted["a"] == shifted["b"] < 0
    assert shifted["a"] == KEYS.date_shift("P1").days
    assert shifted["other"] == KEYS.date_shift("P2").days


def test_full_and_modified_dates_exclude_each_other() -> None:
    with pytest.raises(ProfileError):
        Profile.of(["retain-full-dates", "retain-modified-dates"])
    with pytest.raises(ValueError):
        Profile.of(["retain-everything"])


def test_clean_descriptors_keeps_descriptions_without_identifiers() -> None:
    ds = ct_list(StudySpec(patient_name="SMITHSON^ALICE", patient_id="MRN778899"), 1, 8, 8)[0]
    ds.StudyDescription = "CT CHEST for Smithson MRN778899"
    ds.SeriesDescription = "AXIAL 5MM"
    kept = deidentify(copy.deepcopy(ds), Profile.of(["clean-descriptors"]), KEYS)
    assert kept.StudyDescription == "CT CHEST for"
    assert kept.SeriesDescription == "AXIAL 5MM"
    assert "113105" in [i.CodeValue for i in kept.DeidentificationMethodCodeSequence]
    removed = deidentify(copy.deepcopy(ds), Profile(), KEYS)
    assert "StudyDescription" not in removed and "SeriesDescription" not in removed


def test_clean_structured_content_and_graphics() -> None:
    ds = ct_list(StudySpec(patient_name="SMITHSON^ALICE"), 1, 8, 8)[0]
    item = Dataset()
    item.ValueType, item.TextValue = "TEXT", "nodule seen, Smithson to follow up"
    person = Dataset()
    person.ValueType, person.PersonName = "PNAME", "SMITHSON^ALICE"
    ds.ContentSequence = Sequence([item, person])
    text = Dataset()
    text.UnformattedTextValue = "SMITHSON left"
    annotation = Dataset()
    annotation.TextObjectSequence = Sequence([text])
    ds.GraphicAnnotationSequence = Sequence([annotation])
    basic = deidentify(copy.deepcopy(ds), Profile(), KEYS)
    assert "ContentSequence" not in basic and "GraphicAnnotationSequence" not in basic
    profile = Profile.of(["clean-structured-content", "clean-graphics"])
    clean = deidentify(copy.deepcopy(ds), profile, KEYS)
    assert clean.ContentSequence[0].TextValue == "nodule seen, to follow up"
    assert clean.ContentSequence[1].PersonName == DUMMY_TEXT
    assert clean.GraphicAnnotationSequence[0].TextObjectSequence[0].UnformattedTextValue == "left"


def test_private_tags_removed_unless_safe_and_retained() -> None:
    ds = ct_list(StudySpec())[0]
    block = ds.private_block(0x0019, "SIEMENS MR HEADER", create=True)
    block.add_new(0x0C, "IS", "1000")  # B_value: safe
    block.add_new(0x10, "LO", "secret-ish")  # not in the safe list
    other = ds.private_block(0x0029, "ACME PRIVATE", create=True)
    other.add_new(0x01, "LO", "operator notes")
    stripped = deidentify(copy.deepcopy(ds), Profile(), KEYS)
    assert not [e for e in stripped if e.tag.is_private]
    kept = deidentify(copy.deepcopy(ds), Profile.of(["retain-safe-private"]), KEYS)
    private = {e.tag: e.value for e in kept if e.tag.is_private}
    assert private == {0x00190010: "SIEMENS MR HEADER", 0x0019100C: "1000"}


def test_overlays_removed() -> None:
    ds = ct_list(StudySpec())[0]
    ds.add_new(0x60000010, "US", 8)
    ds.add_new(0x60003000, "OW", b"\x00" * 8)
    ds.add_new(0x60004000, "LT", "name on the overlay")
    after = deidentify(ds, Profile(), KEYS)
    assert not [e for e in after if e.tag.group == 0x6000]


@pytest.mark.parametrize(
    ("name", "quarantined"),
    [
        ("CT_small.dcm", False),
        ("US1_UNCR.dcm", True),
        ("US1_J2KR.dcm", True),
        ("SC_rgb.dcm", True),
        ("MR_small.dcm", True),  # ImageType DERIVED\SECONDARY
        ("JPEG2000.dcm", True),  # a secondary capture SOP class
    ],
)
def test_burned_in_risk_on_samples(name: str, quarantined: bool) -> None:
    ds = sample(name)
    reason = burned_in_risk(ds)
    assert (reason is not None) == quarantined
    if reason:
        for keyword in ("PatientName", "PatientID"):
            value = str(ds.get(keyword, "") or "")
            assert not value or value not in reason


def test_burned_in_rules() -> None:
    ds = ct_list(StudySpec())[0]
    assert burned_in_risk(ds) is None
    ds.BurnedInAnnotation = "YES"
    assert burned_in_risk(ds) == "BurnedInAnnotation is YES"
    us = sample("US1_UNCR.dcm")
    us.BurnedInAnnotation = "NO"
    assert burned_in_risk(us) is None
    ds.BurnedInAnnotation = "NO"
    ds.ImageType = ["DERIVED", "SECONDARY", "SCREEN SAVE"]
    assert burned_in_risk(ds) is not None
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.Modality = "XA"
    del ds.BurnedInAnnotation
    assert burned_in_risk(ds) == "modality XA without BurnedInAnnotation NO"


@settings(max_examples=300, deadline=None)
@given(
    secret=st.binary(min_size=16, max_size=64),
    facility=st.text(max_size=40),
    original=st.from_regex(r"[0-9][0-9.]{0,63}", fullmatch=True),
)
def test_uid_mapper_always_valid(secret: bytes, facility: str, original: str) -> None:
    keys = Keys(secret, facility)
    uid = keys.uid(original)
    assert is_valid_uid(uid) and len(uid) <= 64 and uid.startswith("2.25.")
    assert keys.uid(original) == uid
    assert keys.uid(original + "1") != uid
    value = int(uid[5:])
    assert (value >> 76) & 0xF == 8  # UUID version 8
    assert (value >> 62) & 0x3 == 0b10  # RFC 4122/9562 variant


@settings(max_examples=100, deadline=None)
@given(secret=st.binary(min_size=16, max_size=64), patient=st.text(max_size=64))
def test_date_shift_is_in_range(secret: bytes, patient: str) -> None:
    shift = Keys(secret, "F").date_shift(patient)
    assert -3650 <= shift.days <= -1
    assert Keys(secret, "F").date_shift(patient) == shift
