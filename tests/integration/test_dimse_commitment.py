"""Storage Commitment Push Model against a live ``telerad serve``, with pynetdicom as the SCU."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, build_context, evt
from tests.conftest import LiveServer, free_port
from tests.integration.test_dimse_support import association, ct_study, storescu

from telerad.adapters.dimse.contexts import (
    STORAGE_COMMITMENT_PUSH_MODEL,
    STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


@dataclass
class Reports:
    """N-EVENT-REPORTs received by the SCU, wherever they arrive."""

    received: list[tuple[int, Dataset]] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def handler(self, event: Any) -> tuple[int, None]:
        self.received.append((event.event_type, event.event_information))
        self.arrived.set()
        return 0x0000, None


def _request(sop_uids: list[str]) -> Dataset:
    info = Dataset()
    info.TransactionUID = generate_uid("2.25.")
    info.ReferencedSOPSequence = []
    for uid in sop_uids:
        item = Dataset()
        item.ReferencedSOPClassUID = CT_IMAGE_STORAGE
        item.ReferencedSOPInstanceUID = uid
        info.ReferencedSOPSequence.append(item)
    return info


def _uids(sequence: Any) -> list[str]:
    return [str(item.ReferencedSOPInstanceUID) for item in sequence or []]


def test_commitment_reported_over_the_same_association(
    live_server: LiveServer, tmp_path: Path
) -> None:
    study = ct_study(tmp_path, slices=3, size=16)
    assert storescu(live_server.dicom_port, study.files).returncode == 0
    missing = generate_uid("2.25.")
    reports = Reports()
    request = _request([*study.sop_uids, missing])
    with association(
        live_server.dicom_port,
        [build_context(STORAGE_COMMITMENT_PUSH_MODEL)],
        evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handler)],
    ) as assoc:
        status, reply = assoc.send_n_action(
            request, 1, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE
        )
        assert status.Status == 0x0000
        assert reports.arrived.wait(15), "no N-EVENT-REPORT arrived"
    event_type, info = reports.received[0]
    assert event_type == 2  # some failed
    assert info.TransactionUID == request.TransactionUID
    assert sorted(_uids(info.ReferencedSOPSequence)) == sorted(study.sop_uids)
    assert _uids(info.FailedSOPSequence) == [missing]
    assert info.FailedSOPSequence[0].FailureReason == 0x0112


def test_commitment_reported_over_a_new_association(
    live_server: LiveServer, tmp_path: Path
) -> None:
    """The SCU releases right after N-ACTION; the archive calls its registered node back."""
    study = ct_study(tmp_path, slices=2, size=16)
    assert storescu(live_server.dicom_port, study.files).returncode == 0
    aet = "COMMIT" + generate_uid("2.25.")[-8:]
    reports = Reports()
    listener_ae = AE(ae_title=aet)
    listener_ae.add_supported_context(STORAGE_COMMITMENT_PUSH_MODEL, scu_role=True, scp_role=True)
    port = free_port()
    listener = listener_ae.start_server(
        ("127.0.0.1", port), block=False, evt_handlers=[(evt.EVT_N_EVENT_REPORT, reports.handler)]
    )
    try:
        added = live_server.telerad("node", "add", aet, "--host", "127.0.0.1", "--port", str(port))
        assert added.returncode == 0, added.stderr
        request = _request(study.sop_uids)
        with association(
            live_server.dicom_port, [build_context(STORAGE_COMMITMENT_PUSH_MODEL)], ae_title=aet
        ) as assoc:
            status, _ = assoc.send_n_action(
                request, 1, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE
            )
            assert status.Status == 0x0000
        assert reports.arrived.wait(15), "no N-EVENT-REPORT arrived on the listener"
    finally:
        listener.shutdown()
    event_type, info = reports.received[0]
    assert event_type == 1  # all committed
    assert info.TransactionUID == request.TransactionUID
    assert sorted(_uids(info.ReferencedSOPSequence)) == sorted(study.sop_uids)
    assert "FailedSOPSequence" not in info


def test_bad_commitment_requests_are_refused(live_server: LiveServer) -> None:
    with association(
        live_server.dicom_port, [build_context(STORAGE_COMMITMENT_PUSH_MODEL)]
    ) as assoc:
        no_transaction = Dataset()
        no_transaction.ReferencedSOPSequence = _request(
            [generate_uid("2.25.")]
        ).ReferencedSOPSequence
        status, _ = assoc.send_n_action(
            no_transaction, 1, STORAGE_COMMITMENT_PUSH_MODEL, STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE
        )
        assert status.Status == 0x0120
        assert "Transaction UID" in status.ErrorComment
        status, _ = assoc.send_n_action(
            _request([generate_uid("2.25.")]),
            7,
            STORAGE_COMMITMENT_PUSH_MODEL,
            STORAGE_COMMITMENT_PUSH_MODEL_INSTANCE,
        )
        assert status.Status == 0x0123
