"""Modality Worklist Information Model – FIND SCP (PS3.4 K.6; IHE SWF RAD-5).

A modality asks for its scheduled procedures; each order of the *calling*
facility that the worklist offers (see :mod:`telerad.domain.mwl_query`)
and that matches the identifier is answered with a Pending response holding
exactly the requested keys plus Specific Character Set. Which orders, their
Study Instance UIDs and the query's audit record are the use case's
(:mod:`telerad.services.mwl`); this module reads the identifier and writes the
answers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import UTC, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import Tag

from telerad.adapters.dimse.gate import actor_of, peer_of
from telerad.adapters.dimse.status import (
    CANCEL,
    IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS,
    OUT_OF_RESOURCES,
    PENDING,
    UNABLE_TO_PROCESS,
    failure,
)
from telerad.domain.mwl_query import (
    ITEMS,
    TOP,
    Answer,
    Attribute,
    Key,
    parse_key,
)
from telerad.domain.query import QueryError
from telerad.services.platform import Platform

log = logging.getLogger(__name__)

SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
#: Responses are encoded in UTF-8: orders keep text as Unicode.
RESPONSE_CHARACTER_SET = "ISO_IR 192"


class IdentifierError(ValueError):
    """An identifier that does not fit the worklist information model (status 0xA900)."""


def _raw(value: Any) -> str | list[str]:
    if isinstance(value, (MultiValue, list, tuple)):
        return [str(v) for v in value]
    return "" if value is None else str(value)


def parse_keys(identifier: Dataset, table: dict[str, Attribute] = TOP) -> tuple[Key, ...]:
    """The keys of an identifier (or of a sequence item); raises QueryError."""
    by_tag = {a.tag: a for a in table.values()}
    keys: list[Key] = []
    for elem in identifier:
        tag = int(elem.tag)
        if tag == SPECIFIC_CHARACTER_SET or elem.tag.element == 0:
            continue
        attribute = by_tag.get(tag)
        if attribute is None:
            keys.append(Key(tag, elem.VR))  # not held: returned empty
            continue
        if attribute.vr == "SQ":
            if elem.VR not in ("SQ", "UN") or not isinstance(elem.value, Sequence):
                raise IdentifierError(f"{attribute.keyword} must be a sequence")
            items = elem.value
            if len(items) > 1:
                raise IdentifierError(f"{attribute.keyword} must hold at most one item")
            sub = parse_keys(items[0], ITEMS[attribute.keyword]) if len(items) else ()
            keys.append(Key(tag, "SQ", attribute.keyword, None, sub))
            continue
        try:
            raw = _raw(elem.value)
        except Exception as exc:  # undecodable value (bad character set)
            raise QueryError(f"{attribute.keyword} cannot be decoded") from exc
        keys.append(Key(tag, attribute.vr, attribute.keyword, parse_key(attribute.vr, raw)))
    return tuple(keys)


def to_dataset(values: Answer) -> Dataset:
    ds = Dataset()
    for tag, (vr, value) in sorted(values.items()):
        if isinstance(value, list):
            ds[tag] = DataElement(tag, "SQ", Sequence([to_dataset(item) for item in value]))
        else:
            # The values come from orders already checked; pydicom's per-value
            # validation would cost more than the rest of the answer.
            ds[tag] = DataElement(tag, vr, value, validation_mode=config.IGNORE)
    return ds


def zone_of(platform: Platform) -> tzinfo:
    try:
        return ZoneInfo(platform.settings.worklist_tz)
    except Exception:  # a wrong setting must not stop the worklist: UTC, and say so
        log.error("TELERAD_WORKLIST_TZ is not a known time zone; the worklist uses UTC")
        return UTC


def handle_worklist(event: Any, platform: Platform) -> Iterator[tuple[Any, Dataset | None]]:
    """EVT_C_FIND handler for the Modality Worklist model: yields (status, identifier)."""
    assoc = event.assoc
    try:
        identifier = event.identifier
    except Exception:
        yield failure(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, "the identifier cannot be decoded"), None
        return
    try:
        peer = peer_of(platform, assoc)
        keys = parse_keys(identifier)
    except IdentifierError as exc:
        yield failure(IDENTIFIER_DOES_NOT_MATCH_SOP_CLASS, str(exc)), None
        return
    except QueryError as exc:
        yield failure(UNABLE_TO_PROCESS, str(exc)), None
        return
    except Exception as exc:
        log.error("worklist query failed: %s", type(exc).__name__)
        yield failure(OUT_OF_RESOURCES, "the worklist could not be read"), None
        return
    found = platform.mwl.items(actor_of(assoc), peer, keys, zone_of(platform))
    while True:
        if event.is_cancelled:
            yield CANCEL, None
            return
        try:
            item = next(found, None)
        except Exception as exc:  # the store failed; say so without echoing any values
            log.error("worklist query failed: %s", type(exc).__name__)
            yield failure(OUT_OF_RESOURCES, "the worklist could not be read"), None
            return
        if item is None:
            return
        response = to_dataset(item[1])
        response.SpecificCharacterSet = RESPONSE_CHARACTER_SET
        yield PENDING, response
