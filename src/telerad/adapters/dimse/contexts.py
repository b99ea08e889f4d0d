"""Presentation contexts the archive accepts, and the ones it proposes when it sends.

As SCP the archive accepts every storage SOP class pynetdicom knows, in the
uncompressed transfer syntaxes and the common compressed ones, so that
modalities can send what they produced and the archive keeps it unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydicom.uid import (
    HTJ2K,
    JPEG2000,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AllStoragePresentationContexts, build_context
from pynetdicom.presentation import PresentationContext

# SOP Classes (PS3.4), spelled out: pynetdicom generates its names at import time.
VERIFICATION = "1.2.840.10008.1.1"
STORAGE_COMMITMENT_PUSH_MODEL = "1.2.840.10008.1.20.1"
STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE = "1.2.840.10008.1.20.1.1"
PATIENT_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
PATIENT_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.1.2"
PATIENT_ROOT_GET = "1.2.840.10008.5.1.4.1.2.1.3"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
STUDY_ROOT_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_ROOT_GET = "1.2.840.10008.5.1.4.1.2.2.3"
MODALITY_WORKLIST_FIND = "1.2.840.10008.5.1.4.31"
MODALITY_PERFORMED_PROCEDURE_STEP = "1.2.840.10008.3.1.2.3.3"

#: Transfer syntaxes a dataset can be sent in after decoding it (no pixel codec needed).
UNCOMPRESSED: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    ExplicitVRBigEndian,
)

#: Every transfer syntax accepted for storage, in the archive's order of preference
#: (the requestor's order decides; this list only says what is allowed).
STORAGE_TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    JPEG2000Lossless,
    JPEG2000,
    HTJ2KLossless,
    HTJ2KLosslessRPCL,
    HTJ2K,
    RLELossless,
)

#: Query/Retrieve and other non-storage services: uncompressed syntaxes only.
COMMAND_TRANSFER_SYNTAXES: tuple[str, ...] = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
)

FIND_MODELS: tuple[str, ...] = (PATIENT_ROOT_FIND, STUDY_ROOT_FIND)
MOVE_MODELS: tuple[str, ...] = (PATIENT_ROOT_MOVE, STUDY_ROOT_MOVE)
GET_MODELS: tuple[str, ...] = (PATIENT_ROOT_GET, STUDY_ROOT_GET)
PATIENT_ROOT_MODELS = frozenset({PATIENT_ROOT_FIND, PATIENT_ROOT_MOVE, PATIENT_ROOT_GET})

#: Storage SOP classes, the ones C-STORE and C-GET sub-operations use.
STORAGE_SOP_CLASSES: tuple[str, ...] = tuple(
    str(cx.abstract_syntax) for cx in AllStoragePresentationContexts
)


def supported_contexts() -> list[PresentationContext]:
    """Every context the archive accepts as association acceptor.

    Storage contexts accept an SCP/SCU role selection either way, so that a
    C-GET requestor can take the SCP role for the storage sub-operations.
    """
    contexts: list[PresentationContext] = [
        build_context(VERIFICATION, list(COMMAND_TRANSFER_SYNTAXES))
    ]
    for sop_class in STORAGE_SOP_CLASSES:
        cx = build_context(sop_class, list(STORAGE_TRANSFER_SYNTAXES))
        cx.scu_role = True
        cx.scp_role = True
        contexts.append(cx)
    for sop_class in (
        *FIND_MODELS,
        *MOVE_MODELS,
        *GET_MODELS,
        STORAGE_COMMITMENT_PUSH_MODEL,
        MODALITY_WORKLIST_FIND,
        MODALITY_PERFORMED_PROCEDURE_STEP,
    ):
        contexts.append(build_context(sop_class, list(COMMAND_TRANSFER_SYNTAXES)))
    return contexts


#: A requestor may propose at most 128 presentation contexts (PS3.8 9.3.2.2: odd IDs 1..255).
MAX_PROPOSED_CONTEXTS = 128


def sending_contexts(pairs: Iterable[tuple[str, str]]) -> list[PresentationContext]:
    """Contexts to propose for sending instances of these (SOP class, transfer syntax) pairs.

    Each stored transfer syntax gets a context of its own, so the peer can take
    the original unchanged; each SOP class also gets an uncompressed context to
    fall back to when the peer accepts none of the originals.
    """
    originals: list[PresentationContext] = []
    fallbacks: list[PresentationContext] = []
    seen: set[tuple[str, str]] = set()
    for sop_class, ts in pairs:
        if (sop_class, ts) not in seen:
            seen.add((sop_class, ts))
            originals.append(build_context(sop_class, [ts]))
        if (sop_class, "") not in seen:
            seen.add((sop_class, ""))
            fallbacks.append(build_context(sop_class, list(UNCOMPRESSED)))
    # Past the limit, the fallbacks win: every class can still be sent, converted.
    room = max(0, MAX_PROPOSED_CONTEXTS - len(fallbacks))
    return originals[:room] + fallbacks[:MAX_PROPOSED_CONTEXTS]


def follow_requestor_order(event: Any) -> None:
    """EVT_REQUESTED: accept, per context, the first proposed transfer syntax the archive supports.

    pynetdicom picks the acceptor's first supported syntax among those
    proposed. A modality proposing [JPEG 2000, Explicit VR LE] for a JPEG 2000
    image would then have to decompress it; following the requestor's order
    keeps what it has. (Contexts of the same abstract syntax proposed twice
    follow the first proposal.)
    """
    acceptor = event.assoc.acceptor
    contexts = list(acceptor.supported_contexts)
    position = {cx.abstract_syntax: i for i, cx in enumerate(contexts)}
    seen: set[str] = set()
    for proposed in event.assoc.requestor.requested_contexts:
        abstract = proposed.abstract_syntax
        i = position.get(abstract)
        if i is None or abstract in seen:
            continue
        seen.add(abstract)
        ours = contexts[i]
        first = [ts for ts in proposed.transfer_syntax if ts in ours.transfer_syntax]
        if first and first != ours.transfer_syntax[: len(first)]:
            rest = [ts for ts in ours.transfer_syntax if ts not in first]
            reordered = build_context(abstract, first + rest)
            reordered.scu_role, reordered.scp_role = ours.scu_role, ours.scp_role
            contexts[i] = reordered  # a new object: the server's list is shared
    acceptor.supported_contexts = contexts
