"""C-FIND SCP: a request Identifier becomes a :class:`~telerad.domain.query.Query`.

Matching follows PS3.4 C.2.2.2 through :func:`telerad.domain.query.parse_match`:
a key with a value is matched (single value, ``*``/``?`` wildcards, date/time
ranges, backslash-separated UID lists); an empty key asks for the attribute to
be returned. Keys the archive does not index are returned empty, as the
standard allows. Responses hold exactly the requested keys plus Query/Retrieve
Level, Specific Character Set and Retrieve AE Title.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

from telerad.adapters.dimse.contexts import PATIENT_ROOT_MODELS
from telerad.adapters.dimse.gate import actor_of
from telerad.adapters.dimse.scope import scope_of
from telerad.adapters.dimse.status import (
    CANCEL,
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
    OUT_OF_RESOURCES,
    PENDING,
    UNABLE_TO_PROCESS,
    failure,
)
from telerad.domain.model import Level
from telerad.domain.query import (
    ATTRIBUTES,
    BY_TAG,
    LEVELS_UP_TO,
    Query,
    QueryError,
    parse_match,
)
from telerad.services.platform import Platform

log = logging.getLogger(__name__)

QUERY_RETRIEVE_LEVEL = Tag(0x0008, 0x0052)
SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
RETRIEVE_AE_TITLE = Tag(0x0008, 0x0054)
INSTANCE_AVAILABILITY = Tag(0x0008, 0x0056)
#: Elements of the identifier that are not keys.
NOT_KEYS = {QUERY_RETRIEVE_LEVEL, SPECIFIC_CHARACTER_SET, RETRIEVE_AE_TITLE}

#: Responses are encoded in UTF-8: the index keeps text as Unicode.
RESPONSE_CHARACTER_SET = "ISO_IR 192"


class IdentifierError(ValueError):
    """An identifier that does not fit the information model (status 0xA900)."""


@dataclass(frozen=True)
class RequestedKey:
    tag: int
    vr: str
    keyword: str | None  # None: not indexed, returned empty


@dataclass
class FindRequest:
    query: Query
    keys: list[RequestedKey] = field(default_factory=list)


def query_level(identifier: Dataset, model: str) -> Level:
    """The identifier's Query/Retrieve Level, checked against the information model."""
    raw = identifier.get("QueryRetrieveLevel")
    if raw is None or str(raw).strip() == "":
        raise IdentifierError("Query/Retrieve Level is missing")
    try:
        level = Level(str(raw).strip().upper())
    except ValueError:
        raise IdentifierError("Query/Retrieve Level is not PATIENT/STUDY/SERIES/IMAGE") from None
    if level is Level.PATIENT and model not in PATIENT_ROOT_MODELS:
        raise IdentifierError("PATIENT level needs the Patient Root model")
    return level


def _raw_value(value: Any) -> str | list[str]:
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value]
    return str(value)


def parse_find(identifier: Dataset, model: str) -> FindRequest:
    """Translate a C-FIND identifier; raises IdentifierError or QueryError."""
    level = query_level(identifier, model)
    allowed = set(LEVELS_UP_TO[level])
    query = Query(level)
    request = FindRequest(query)
    for elem in identifier:
        if elem.tag in NOT_KEYS or elem.tag.element == 0:  # group lengths are not keys
            continue
        attribute = BY_TAG.get(int(elem.tag))
        if attribute is None or elem.VR == "SQ":
            request.keys.append(RequestedKey(int(elem.tag), elem.VR, None))
            continue
        keyword = attribute.keyword
        request.keys.append(RequestedKey(int(elem.tag), attribute.vr, keyword))
        if elem.is_empty:
            if attribute.level in allowed:
                query.returns.add(keyword)
            continue
        if attribute.level not in allowed:
            raise IdentifierError(f"{keyword} is below the {level} level")
        try:
            value = _raw_value(elem.value)
        except Exception as exc:  # undecodable value (bad character set, bad number)
            raise QueryError(f"{keyword} cannot be decoded") from exc
        match = parse_match(keyword, value)
        if match is None:
            query.returns.add(keyword)
        else:
            query.matches[keyword] = match
    return request


def _response_value(keyword: str, value: object) -> Any:
    if value is None or value == "":
        return None
    if ATTRIBUTES[keyword].vr in ("IS", "US"):
        return int(value)  # type: ignore[call-overload]
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value)


def build_response(row: dict[str, object], request: FindRequest, retrieve_aet: str) -> Dataset:
    ds = Dataset()
    ds.SpecificCharacterSet = RESPONSE_CHARACTER_SET
    ds.QueryRetrieveLevel = request.query.level.value
    ds.RetrieveAETitle = retrieve_aet
    for key in request.keys:
        if key.keyword is not None and key.keyword in row:
            ds.add_new(key.tag, key.vr, _response_value(key.keyword, row[key.keyword]))
        elif key.tag == INSTANCE_AVAILABILITY:
            ds.add_new(key.tag, "CS", "ONLINE")
        elif key.vr == "SQ":
            ds.add_new(key.tag, "SQ", [])
        else:
            ds.add_new(key.tag, key.vr, None)
    return ds


def handle_find(event: Any, platform: Platform) -> Iterator[tuple[Any, Dataset | None]]:
    """EVT_C_FIND handler: yields (status, identifier) pairs."""
    assoc = event.assoc
    try:
        identifier = event.identifier
    except Exception:
        yield failure(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, "the identifier cannot be decoded"), None
        return
    model = str(event.request.AffectedSOPClassUID)
    try:
        scope = scope_of(platform, assoc)
        request = parse_find(identifier, model)
        keys = ", ".join(f"{k}={m}" for k, m in request.query.matches.items())
        asked = f"C-FIND {request.query.level.value} {keys}"
        rows = platform.studies.search(actor_of(assoc), scope, request.query, asked)
    except IdentifierError as exc:
        yield failure(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc)), None
        return
    except QueryError as exc:
        yield failure(UNABLE_TO_PROCESS, str(exc)), None
        return
    except Exception as exc:  # the index failed; say so without echoing any values
        log.error("C-FIND failed: %s", type(exc).__name__)
        yield failure(OUT_OF_RESOURCES, "the archive could not run the query"), None
        return
    aet = assoc.acceptor.ae_title
    for row in rows:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, build_response(row, request, aet)
