"""Modality Performed Procedure Step SCP (PS3.4 Annex F; IHE SWF RAD-6 and RAD-7).

The DIMSE side only: N-CREATE and N-SET decoded, handed to the MPPS service
(:mod:`telerad.services.mpps`, which keeps the step and moves its orders by the
domain's table of moves, :mod:`telerad.domain.mpps`), and each refusal answered
with the standard's status (:data:`STATUS`).
"""

from __future__ import annotations

import logging
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from telerad.adapters.dimse.contexts import MODALITY_PERFORMED_PROCEDURE_STEP
from telerad.adapters.dimse.gate import actor_of, peer_of
from telerad.adapters.dimse.status import (
    DUPLICATE_SOP_INSTANCE,
    INVALID_ATTRIBUTE_VALUE,
    MISSING_ATTRIBUTE,
    NO_SUCH_OBJECT_INSTANCE,
    PROCESSING_FAILURE,
    SUCCESS,
    failure,
)
from telerad.domain.mpps import Refused, StepRefused
from telerad.domain.uids import is_valid_uid
from telerad.services.orders import Origin
from telerad.services.platform import Platform

log = logging.getLogger(__name__)

INVALID_OBJECT_INSTANCE = 0x0117
NO_SUCH_SOP_CLASS = 0x0118
NOT_AUTHORISED = 0x0124
#: Error ID (0000,0903) of "Performed Procedure Step Object may no longer be updated"
#: (PS3.4 F.7.2.2.2), sent with Processing Failure 0x0110.
MAY_NO_LONGER_BE_UPDATED = 0xA710
#: The DIMSE status (and Error ID) of each refusal.
STATUS: dict[Refused, tuple[int, int | None]] = {
    Refused.NO_STATUS: (MISSING_ATTRIBUTE, None),
    Refused.UNKNOWN_STATUS: (INVALID_ATTRIBUTE_VALUE, None),
    Refused.NOT_STARTED: (INVALID_ATTRIBUTE_VALUE, None),
    Refused.ENDED: (PROCESSING_FAILURE, MAY_NO_LONGER_BE_UPDATED),
    Refused.EXISTS: (DUPLICATE_SOP_INSTANCE, None),
    Refused.NO_SUCH_STEP: (NO_SUCH_OBJECT_INSTANCE, None),
    Refused.NO_SCHEDULED_STEP: (MISSING_ATTRIBUTE, None),
}


class Refusal(Exception):
    def __init__(self, status: int, comment: str, error_id: int | None = None) -> None:
        super().__init__(comment)
        self.status = status
        self.error_id = error_id

    @classmethod
    def of(cls, refused: StepRefused) -> Refusal:
        status, error_id = STATUS[refused.reason]
        return cls(status, str(refused), error_id)

    def dataset(self) -> Dataset:
        ds = failure(self.status, str(self))
        if self.error_id is not None:
            ds.ErrorID = self.error_id
        return ds


class MppsSCP:
    """EVT_N_CREATE and EVT_N_SET handlers of the MPPS SOP Class."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform
        self.service = platform.mpps

    # -- N-CREATE ---------------------------------------------------------------------
    def create(self, event: Any) -> tuple[Any, Dataset | None]:
        try:
            return self._create(event)
        except StepRefused as exc:
            return Refusal.of(exc).dataset(), None
        except Refusal as exc:
            return exc.dataset(), None
        except Exception as exc:
            log.error("MPPS N-CREATE failed: %s", type(exc).__name__)
            return failure(PROCESSING_FAILURE, "the step could not be kept"), None

    def _create(self, event: Any) -> tuple[Any, Dataset | None]:
        request = event.request
        self._check_sop_class(str(request.AffectedSOPClassUID))
        facility_id = self._facility(event.assoc)
        given = str(request.AffectedSOPInstanceUID or "").strip()
        uid = given or generate_uid("2.25.")  # UUID-derived (PS3.5 B.2)
        if not is_valid_uid(uid):
            raise Refusal(INVALID_OBJECT_INSTANCE, "Affected SOP Instance UID is not a valid UID")
        try:
            ds = event.attribute_list
            ds.get("PerformedProcedureStepStatus")  # decode now
        except Exception:
            raise Refusal(INVALID_ATTRIBUTE_VALUE, "Attribute List cannot be decoded") from None
        self.service.create(facility_id, uid, ds, self._origin(event.assoc))
        if given:
            return SUCCESS, None
        reply = Dataset()
        reply.AffectedSOPInstanceUID = uid  # pynetdicom moves it into the response
        return SUCCESS, reply

    # -- N-SET ------------------------------------------------------------------------
    def set(self, event: Any) -> tuple[Any, Dataset | None]:
        try:
            return self._set(event)
        except StepRefused as exc:
            return Refusal.of(exc).dataset(), None
        except Refusal as exc:
            return exc.dataset(), None
        except Exception as exc:
            log.error("MPPS N-SET failed: %s", type(exc).__name__)
            return failure(PROCESSING_FAILURE, "the step could not be updated"), None

    def _set(self, event: Any) -> tuple[Any, Dataset | None]:
        request = event.request
        self._check_sop_class(str(request.RequestedSOPClassUID))
        facility_id = self._facility(event.assoc)
        uid = str(request.RequestedSOPInstanceUID or "").strip()
        try:
            changes = list(event.modification_list)  # decode now, not half-way through
        except Exception:
            raise Refusal(INVALID_ATTRIBUTE_VALUE, "Modification List cannot be decoded") from None
        self.service.update(facility_id, uid, changes, self._origin(event.assoc))
        return SUCCESS, None

    # -- shared -----------------------------------------------------------------------
    @staticmethod
    def _check_sop_class(uid: str) -> None:
        if uid != MODALITY_PERFORMED_PROCEDURE_STEP:
            raise Refusal(NO_SUCH_SOP_CLASS, "only Modality Performed Procedure Step")

    def _facility(self, assoc: Any) -> int:
        peer = peer_of(self.platform, assoc)
        if peer.scope is None:  # a reading hub performs no procedures
            raise Refusal(NOT_AUTHORISED, "this AE is registered for no facility")
        return peer.store_facility_id

    @staticmethod
    def _origin(assoc: Any) -> Origin:
        actor = actor_of(assoc)
        return Origin("MPPS", actor.id, actor.source)
