"""Who may read a study now: the one test every routing path (push, pull, reassignment) uses.

A reader is eligible when they are signed in, on shift, licensed in the exam's
jurisdiction, privileged at the facility, competent in the modality and, for a
subspecialty study, in that subspecialty, and do that kind of read (preliminary
or final). The queue cap is not eligibility: it is a choice the engine makes,
and critical tiers bypass it.
"""

from __future__ import annotations

from datetime import datetime

from telerad.workflow.model import Reader, ReadingStudy


def qualified(reader: Reader, study: ReadingStudy) -> list[str]:
    """The reasons that do not change with the clock (credentials and competence)."""
    reasons = []
    if study.jurisdiction not in reader.licences:
        reasons.append(f"not licensed in {study.jurisdiction}")
    if study.facility_id not in reader.facility_ids:
        reasons.append(f"no privileges at facility {study.facility_id}")
    if study.modality not in reader.modalities:
        reasons.append(f"no {study.modality} competence")
    if study.subspecialty and study.subspecialty not in reader.subspecialties:
        reasons.append(f"no {study.subspecialty} subspecialty")
    if study.read_kind not in reader.read_kinds:
        reasons.append(f"does not do {study.read_kind} reads")
    return reasons


def eligible(
    reader: Reader, study: ReadingStudy, now: datetime, *, on_shift: bool | None = None
) -> tuple[bool, list[str]]:
    """Whether ``reader`` may read ``study`` at ``now``, and every reason when not.

    ``on_shift`` is :meth:`Reader.on_shift` at ``now`` when the caller has it cached.
    """
    reasons = []
    if not reader.signed_in:
        reasons.append("signed out")
    if not (reader.on_shift(now) if on_shift is None else on_shift):
        reasons.append("not on shift")
    reasons += qualified(reader, study)
    return not reasons, reasons
