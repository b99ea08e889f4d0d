"""QIDO-RS query parameters (PS3.18 8.3.4) → :class:`telerad.domain.query.Query`.

Matching keys are named by keyword (``PatientID``) or tag (``00100020``).
``includefield`` (repeatable, comma lists, ``all``), ``limit``, ``offset`` and
``fuzzymatching`` are the reserved parameters. A key the index cannot match is
an error (400), not silently ignored: a client must not believe it filtered.
An ``includefield`` naming a real DICOM attribute the index does not keep is
ignored with a warning (PS3.18 8.3.4.1: the origin server returns what it has).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydicom.datadict import dictionary_has_tag, tag_for_keyword

from telerad.domain.model import Level
from telerad.domain.query import (
    ATTRIBUTES,
    BY_TAG,
    LEVELS_UP_TO,
    Exact,
    Query,
    QueryError,
    UidList,
    parse_match,
)
from telerad.domain.uids import is_valid_uid

#: Most results one response carries; more need ``offset`` (a Warning says so).
MAX_LIMIT = 5000
_TAG = re.compile(r"^[0-9A-Fa-f]{8}$")
_RESERVED = {"limit", "offset", "fuzzymatching", "includefield"}
_LIST_VRS = {"CS"}  # ModalitiesInStudy=CT,MR is a list (CS values hold no commas)


@dataclass
class QidoRequest:
    query: Query
    warnings: list[str] = field(default_factory=list)
    #: Set when the server's cap applies: the query asks one more row to detect "more".
    cap: int | None = None


def _keyword(name: str) -> str | None:
    """The index keyword for a parameter name, None for a DICOM attribute we do not index."""
    if _TAG.match(name):
        tag = int(name, 16)
        attribute = BY_TAG.get(tag)
        if attribute is not None:
            return attribute.keyword
        if dictionary_has_tag(tag):
            return None
        raise QueryError(f"{name} is not a DICOM attribute tag")
    if name in ATTRIBUTES:
        return name
    if tag_for_keyword(name) is not None:
        return None
    raise QueryError(f"'{name}' is not a query parameter or DICOM attribute keyword")


def _integer(name: str, raw: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise QueryError(f"{name} must be a non-negative integer, not '{raw}'") from exc
    if value < 0:
        raise QueryError(f"{name} must be a non-negative integer, not '{raw}'")
    return value


def _check_uids(keyword: str, match: object) -> None:
    uids: tuple[str, ...] = ()
    if isinstance(match, Exact):
        uids = (match.value,)
    elif isinstance(match, UidList):
        uids = match.uids
    for uid in uids:
        if not is_valid_uid(uid):
            raise QueryError(f"{keyword}: '{uid}' is not a valid UID")


def check_path_uid(name: str, uid: str) -> str:
    if not is_valid_uid(uid):
        raise QueryError(f"{name} '{uid[:80]}' is not a valid UID")
    return uid


def parse_qido(
    level: Level, params: Iterable[tuple[str, str]], path: dict[str, str] | None = None
) -> QidoRequest:
    """Query parameters (in order, repeats allowed) and path UIDs → a query."""
    allowed = set(LEVELS_UP_TO[level])
    values: dict[str, list[str]] = {}
    returns: set[str] = set()
    warnings: list[str] = []
    limit: int | None = None
    offset = 0
    fuzzy = False
    for name, raw in params:
        lname = name.lower()
        if lname in _RESERVED:
            if lname == "limit":
                limit = _integer("limit", raw)
            elif lname == "offset":
                offset = _integer("offset", raw)
            elif lname == "fuzzymatching":
                if raw.lower() not in ("true", "false"):
                    raise QueryError("fuzzymatching must be true or false")
                fuzzy = raw.lower() == "true"
            else:
                for item in (i.strip() for i in raw.split(",")):
                    if not item:
                        continue
                    if item.lower() == "all":
                        returns.update(k for k, a in ATTRIBUTES.items() if a.level in allowed)
                        continue
                    if "." in item:
                        warnings.append(f"includefield {item}: sequence paths are not supported")
                        continue
                    keyword = _keyword(item)
                    if keyword is None or ATTRIBUTES[keyword].level not in allowed:
                        warnings.append(f"includefield {item} is not available at this level")
                    else:
                        returns.add(keyword)
            continue
        if "." in name:
            raise QueryError(f"{name}: sequence matching is not supported")
        keyword = _keyword(name)
        if keyword is None:
            raise QueryError(f"{name} is not supported as a matching key")
        if ATTRIBUTES[keyword].level not in allowed:
            raise QueryError(f"{name} cannot be matched at the {level.value.lower()} level")
        values.setdefault(keyword, []).append(raw)
    matches = {}
    for keyword, raws in values.items():
        attribute = ATTRIBUTES[keyword]
        if attribute.vr in _LIST_VRS:
            raws = ["\\".join(r.replace(",", "\\") for r in raws)]
        value: str | list[str] = raws[0] if len(raws) == 1 else raws
        if attribute.vr == "UI" and isinstance(value, list):
            value = [u.strip() for r in raws for u in r.split(",") if u.strip()]
        match = parse_match(keyword, value)
        if match is None:
            returns.add(keyword)  # universal matching: return the attribute
            continue
        if attribute.vr == "UI":
            _check_uids(keyword, match)
        matches[keyword] = match
    for keyword, uid in (path or {}).items():
        matches[keyword] = Exact(check_path_uid(keyword, uid))
    capped = limit is None or limit > MAX_LIMIT
    if limit is not None and limit > MAX_LIMIT:
        warnings.append(f"limit {limit} exceeds the maximum; at most {MAX_LIMIT} are returned")
    # One more than the cap tells whether the server held results back.
    query = Query(level, matches, returns, None, fuzzy, MAX_LIMIT + 1 if capped else limit, offset)
    return QidoRequest(query, warnings, MAX_LIMIT if capped else None)
