"""The DIMSE listener in-process over a PostgreSQL index: C-STORE, then C-FIND and C-GET."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pynetdicom import build_context, build_role
from tests.integration.test_dimse_support import Received, association, ct_study, storescu

from telerad.adapters.dimse.contexts import STUDY_ROOT_FIND, STUDY_ROOT_GET
from telerad.adapters.dimse.server import start_dimse_server
from telerad.bootstrap import Platform

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def test_store_find_get_on_postgresql(pg_platform: Platform, tmp_path: Path) -> None:
    assert pg_platform.engine.dialect.name == "postgresql"
    server = start_dimse_server(pg_platform, port=0)
    try:
        study = ct_study(tmp_path, slices=6, size=64, patient_id="PGDIMSE")
        result = storescu(server.port, study.files)
        assert result.returncode == 0, result.stdout + result.stderr
        assert pg_platform.index.counts()["instances"] == 6

        query = Dataset()
        query.QueryRetrieveLevel = "SERIES"
        query.PatientID = "PG*"
        query.StudyInstanceUID = study.study_uid
        query.SeriesInstanceUID = ""
        query.NumberOfSeriesRelatedInstances = ""
        with association(server.port, [build_context(STUDY_ROOT_FIND)]) as assoc:
            responses = list(assoc.send_c_find(query, STUDY_ROOT_FIND))
        matches = [ident for status, ident in responses if status.Status == 0xFF00]
        assert responses[-1][0].Status == 0x0000
        assert len(matches) == 1 and matches[0] is not None
        assert int(matches[0].NumberOfSeriesRelatedInstances) == 6

        received = Received()
        contexts = [build_context(STUDY_ROOT_GET), build_context(CT_IMAGE_STORAGE)]
        roles = [build_role(CT_IMAGE_STORAGE, scp_role=True)]
        with association(server.port, contexts, ext_neg=roles, evt_handlers=received.bind) as assoc:
            get = Dataset()
            get.QueryRetrieveLevel = "STUDY"
            get.StudyInstanceUID = study.study_uid
            final = list(assoc.send_c_get(get, STUDY_ROOT_GET))[-1][0]
        assert final.Status == 0x0000
        for path, uid in zip(study.files, study.sop_uids, strict=True):
            assert np.array_equal(
                received.dataset(uid).pixel_array, pydicom.dcmread(path).pixel_array
            )
    finally:
        server.shutdown()
