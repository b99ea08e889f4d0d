"""Which modality a study is read as, and which instances are images of the examination."""

from __future__ import annotations

import pytest
from pydicom.uid import (
    ComprehensiveSRStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    EncapsulatedPDFStorage,
    GrayscaleSoftcopyPresentationStateStorage,
    KeyObjectSelectionDocumentStorage,
    MRImageStorage,
    ParametricMapStorage,
    RTImageStorage,
    RTStructureSetStorage,
    SecondaryCaptureImageStorage,
    SegmentationStorage,
    TwelveLeadECGWaveformStorage,
    UltrasoundMultiFrameImageStorage,
)

from telerad.domain.identity import OPEN_ACCESS, Principal, Role
from telerad.domain.modalities import (
    InstanceOrigin,
    is_acquired_image,
    modality_problem,
    primary_modality,
)


@pytest.mark.parametrize(
    ("modalities", "expected"),
    [
        ({"US"}, "US"),
        ({"CT", "SR"}, "CT"),
        ({"PR", "US"}, "US"),  # alphabetically PR came first: nobody reads PR
        ({"CT", "PT"}, "PT"),  # PET/CT is read as PET
        ({"CT", "NM"}, "NM"),  # SPECT/CT
        ({"KO", "SEG", "SR"}, "OT"),
        (set(), "OT"),
        ({"ES", "XC"}, "ES"),
        ({" mr "}, "MR"),
    ],
)
def test_primary_modality(modalities: set[str], expected: str) -> None:
    assert primary_modality(modalities) == expected


@pytest.mark.parametrize(
    ("modality", "problem"),
    [
        ("CT", None),
        ("DX", None),
        ("/US/", "not a DICOM modality"),
        ("US\\SR", "not a DICOM modality"),
        ("SR", "not an imaging modality"),
        ("", "no modality"),
    ],
)
def test_modality_problem(modality: str, problem: str | None) -> None:
    found = modality_problem(modality)
    assert (found is None) if problem is None else (found is not None and problem in found)


@pytest.mark.parametrize(
    "sop_class",
    [
        CTImageStorage,
        MRImageStorage,
        UltrasoundMultiFrameImageStorage,
        DigitalXRayImageStorageForPresentation,
        SecondaryCaptureImageStorage,
        RTImageStorage,
        TwelveLeadECGWaveformStorage,
    ],
)
def test_acquired_images(sop_class: str) -> None:
    assert is_acquired_image(sop_class)
    assert not is_acquired_image(sop_class, InstanceOrigin.READING)


@pytest.mark.parametrize(
    "sop_class",
    [
        ComprehensiveSRStorage,
        "1.2.840.10008.5.1.4.1.1.88.34",  # Comprehensive 3D SR (OHIF's measurements)
        KeyObjectSelectionDocumentStorage,
        GrayscaleSoftcopyPresentationStateStorage,
        EncapsulatedPDFStorage,
        SegmentationStorage,
        ParametricMapStorage,
        RTStructureSetStorage,
    ],
)
def test_objects_made_while_reading_are_not_acquired_images(sop_class: str) -> None:
    assert not is_acquired_image(sop_class)


def test_origin_of_who_stores() -> None:
    from telerad.domain.identity import origin_of

    def who(role: Role, facilities: frozenset[int] | None) -> Principal:
        return Principal("x", role, facilities, frozenset())

    assert origin_of(who(Role.RADIOLOGIST, frozenset({1}))) is InstanceOrigin.READING
    assert origin_of(who(Role.NETWORK_ADMIN, None)) is InstanceOrigin.READING
    assert origin_of(who(Role.SERVICE, None)) is InstanceOrigin.READING
    assert origin_of(who(Role.SERVICE, frozenset({1}))) is InstanceOrigin.ACQUISITION
    assert origin_of(who(Role.FACILITY_USER, frozenset({1}))) is InstanceOrigin.ACQUISITION
    assert origin_of(OPEN_ACCESS) is InstanceOrigin.ACQUISITION
