"""DIMSE status codes the archive answers with (PS3.4 B.2.3, C.4, J.3; PS3.7 C)."""

from __future__ import annotations

from pydicom.dataset import Dataset

SUCCESS = 0x0000
PENDING = 0xFF00
CANCEL = 0xFE00

# C-STORE
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
#: A different object already holds the SOP Instance UID (the first one kept wins).
DUPLICATE_SOP_INSTANCE = 0x0111

# Query/Retrieve
IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS = 0xA900
UNABLE_TO_PROCESS = 0xC000

# DIMSE-N (Storage Commitment)
NO_SUCH_ACTION_TYPE = 0x0123
NO_SUCH_OBJECT_INSTANCE = 0x0112
MISSING_ATTRIBUTE = 0x0120
INVALID_ATTRIBUTE_VALUE = 0x0106
PROCESSING_FAILURE = 0x0110

#: Error Comment is LO: 64 characters at most.
MAX_ERROR_COMMENT = 64


def failure(code: int, comment: str) -> Dataset:
    """A status dataset carrying an Error Comment (short, and never patient data)."""
    status = Dataset()
    status.Status = code
    text = " ".join(comment.split())  # one line, no control characters
    status.ErrorComment = text.encode("ascii", "replace").decode("ascii")[:MAX_ERROR_COMMENT]
    return status
