"""Modalities and SOP classes as routing and readiness need them.

The reading worklist routes a study by one modality (a reader "reads CT"), so a
study whose images span several (PET/CT, a CT with the radiologist's SR, an
ultrasound with a presentation state) needs the one that says how it is read:
:func:`primary_modality`. Objects made while reading — structured reports, key
object selections, presentation states, encapsulated documents, segmentations
and other AI results — are not images of the examination: :func:`is_acquired_image`
tells them apart by SOP Class, so they never make a study look incomplete again.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable


class InstanceOrigin(enum.StrEnum):
    """Who made an instance: the facility's modalities, or the reading network itself."""

    #: Sent by a facility: its modalities, PACS, gateway or staff.
    ACQUISITION = "acquisition"
    #: Made by the platform's own users or network service accounts while reading
    #: (a radiologist's SR from the viewer, an AI engine's results).
    READING = "reading"


#: Modality (0008,0060) defined terms of PS3.3 C.7.3.1.1.1, with the retired ones
#: older modalities still send.
DICOM_MODALITIES = frozenset(
    {
        # current
        "ANN", "AR", "ASMT", "AU", "BDUS", "BI", "BMD", "CFM", "CR", "CT", "CTPROTOCOL",
        "DMS", "DG", "DOC", "DX", "ECG", "EEG", "EMG", "EOG", "EPS", "ES", "FID", "GM",
        "HC", "HD", "IO", "IOL", "IVOCT", "IVUS", "KER", "KO", "LEN", "LS", "MG", "MR",
        "M3D", "NM", "OAM", "OCT", "OP", "OPM", "OPT", "OPTBSV", "OPTENF", "OPV", "OSS",
        "OT", "PA", "PLAN", "POS", "PR", "PT", "PX", "REG", "RESP", "RF", "RG", "RTDOSE",
        "RTIMAGE", "RTINTENT", "RTPLAN", "RTRAD", "RTRECORD", "RTSEGANN", "RTSTRUCT",
        "RWV", "SEG", "SM", "SMR", "SR", "SRF", "STAIN", "TEXTUREMAP", "TG", "US", "VA",
        "XA", "XAPROTOCOL", "XC",
        # retired (PS3.3 C.7.3.1.1.1, retired defined terms)
        "AS", "CD", "CF", "CP", "CS", "DD", "DF", "DM", "DS", "EC", "FA", "FS", "LP",
        "MA", "MS", "OPR", "ST", "VF",
    }
)  # fmt: skip

#: Modalities of objects that are not images of the examination: nobody "reads SR".
DERIVED_MODALITIES = frozenset(
    {"ANN", "DOC", "FID", "KO", "PLAN", "PR", "REG", "RTSEGANN", "RTSTRUCT", "RWV", "SEG", "SR"}
)

#: Which modality names how a study of several is read (PET/CT is read as PET).
_READ_AS = ("PT", "NM", "MG", "MR", "CT", "US", "XA", "RF", "DX", "CR", "IO", "PX", "OT")


def primary_modality(modalities: Iterable[str]) -> str:
    """The modality a study is read as, from the modalities in it ("OT" when none).

    Derived objects (SR, PR, KO, SEG…) never decide; among the rest the first of
    PT, NM, MG, MR, CT, US, XA, RF, DX, CR… wins, then any other alphabetically.
    """
    found = {m.strip().upper() for m in modalities if m and m.strip()}
    images = found - DERIVED_MODALITIES
    for modality in _READ_AS:
        if modality in images:
            return modality
    return min(images, default="OT")


def modality_problem(modality: str) -> str | None:
    """Why ``modality`` cannot route a study (None: it can)."""
    if not modality:
        return "the study has no modality"
    if modality not in DICOM_MODALITIES:
        return f"modality {modality!r} is not a DICOM modality (PS3.3 C.7.3.1.1.1)"
    if modality in DERIVED_MODALITIES:
        return f"modality {modality} is not an imaging modality"
    return None


# -- SOP classes ----------------------------------------------------------------------
_STORAGE = "1.2.840.10008.5.1.4.1.1."
#: SOP Class UID prefixes of objects that are not acquired images.
_DERIVED_PREFIXES = (
    _STORAGE + "11.",  # presentation states (grayscale, color, pseudo-color, blending, XA/XRF…)
    _STORAGE + "88.",  # structured reports and Key Object Selection (88.59)
    _STORAGE + "104.",  # encapsulated PDF, CDA, STL, OBJ, MTL
    _STORAGE + "66",  # raw data (66), registrations (66.1, 66.3), fiducials (66.2),
    # segmentation (66.4), surface segmentation (66.5), tractography (66.6)…
    _STORAGE + "67",  # real world value mapping
    _STORAGE + "481.",  # radiotherapy objects (structure sets, plans, records)
    _STORAGE + "90.",  # content assessment results
    _STORAGE + "91.",  # microscopy bulk simple annotations
    "1.2.840.10008.5.1.4.38.",  # hanging protocols
    "1.2.840.10008.5.1.4.39.",  # color palettes
    "1.2.840.10008.5.1.4.43.",  # generic implant templates
)
#: Single derived classes outside those families.
_DERIVED_CLASSES = frozenset({_STORAGE + "30"})  # parametric map (AI, quantitative results)
#: An image inside a derived family: RT Image (portal and simulator images).
_IMAGES_IN_DERIVED_FAMILIES = frozenset({_STORAGE + "481.1"})


def is_acquired_image(sop_class_uid: str, origin: str = InstanceOrigin.ACQUISITION) -> bool:
    """Whether an instance counts as an image of the examination for readiness.

    Objects made by the reading network (``origin`` READING) never do, whatever
    their class; nor do reports, key objects, presentation states, documents,
    segmentations and parametric maps, whoever sent them.
    """
    if origin == InstanceOrigin.READING:
        return False
    uid = sop_class_uid.strip()
    if uid in _IMAGES_IN_DERIVED_FAMILIES:
        return True
    if uid in _DERIVED_CLASSES:
        return False
    return not uid.startswith(_DERIVED_PREFIXES)
