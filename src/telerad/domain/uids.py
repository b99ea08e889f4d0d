"""UID syntax (PS3.5 9.1): digits and dots, components without leading zeros, 64 chars max."""

from __future__ import annotations

import re

MAX_UID_LENGTH = 64
_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


class InvalidUID(ValueError):
    """A UID that does not follow PS3.5 9.1."""


def is_valid_uid(value: object) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_UID_LENGTH
        and _UID_RE.match(value) is not None
    )


def check_uid(name: str, value: object) -> str:
    """Return ``value`` stripped of DICOM padding, or raise :class:`InvalidUID` naming it."""
    if value is None or value == "":
        raise InvalidUID(f"{name} is missing")
    if not isinstance(value, str):
        raise InvalidUID(f"{name} is not a string")
    uid = value.rstrip("\x00 ")
    if len(uid) > MAX_UID_LENGTH:
        raise InvalidUID(f"{name} is longer than {MAX_UID_LENGTH} characters")
    if not _UID_RE.match(uid):
        raise InvalidUID(f"{name} has characters or components a UID may not have")
    return uid
