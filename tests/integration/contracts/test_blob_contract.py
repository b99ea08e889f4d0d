"""The blob store (``services.ports.BlobStore``): what the fake and FileBlobStore both do."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.fakes.blobs import FakeBlobStore

from telerad.services.ports import IntegrityError
from telerad.storage.blobs.filesystem import FileBlobStore

DATA = b"DICM" * 100


@pytest.fixture(params=["fake", "files"])
def blobs(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    store = FakeBlobStore() if request.param == "fake" else FileBlobStore(tmp_path / "blobs")
    yield store
    store.close()


def test_a_stored_object_reads_back_and_is_verified(blobs: Any) -> None:
    stored = blobs.put(1, "1.2.3", DATA)
    assert stored.sha256 == hashlib.sha256(DATA).hexdigest() and stored.size == len(DATA)
    assert stored.key == blobs.key_for(1, "1.2.3", stored.sha256)
    assert blobs.get(stored.key) == DATA
    assert blobs.get(stored.key, stored.sha256) == DATA
    with pytest.raises(IntegrityError, match="does not match"):
        blobs.get(stored.key, "0" * 64)
    with pytest.raises(FileNotFoundError):
        blobs.get("1/00/missing.dcm")


def test_keys_differ_by_facility_uid_and_content(blobs: Any) -> None:
    digest = hashlib.sha256(DATA).hexdigest()
    keys = {
        blobs.key_for(1, "1.2.3", digest),
        blobs.key_for(2, "1.2.3", digest),
        blobs.key_for(1, "1.2.4", digest),
        blobs.key_for(1, "1.2.3", "f" * 64),
    }
    assert len(keys) == 4
    assert all(k.startswith(("1/", "2/")) and "1.2.3" not in k for k in keys)


def test_staged_objects_are_committed_or_discarded(blobs: Any) -> None:
    staged = blobs.stage(1, DATA)
    assert staged.digest.result() == hashlib.sha256(DATA).hexdigest()
    assert staged.size == len(DATA)
    stored = blobs.commit(staged, "1.2.3")
    assert blobs.get(stored.key, stored.sha256) == DATA
    dropped = blobs.stage(1, b"refused bytes")
    blobs.discard(dropped)
    with pytest.raises(FileNotFoundError):
        blobs.get(blobs.key_for(1, "1.2.4", dropped.digest.result()))
    given = blobs.stage(1, DATA, sha256="a" * 64)  # a digest the caller computed
    assert blobs.commit(given, "1.2.5").sha256 == "a" * 64


def test_delete_is_idempotent(blobs: Any) -> None:
    stored = blobs.put(1, "1.2.3", DATA)
    blobs.delete(stored.key)
    blobs.delete(stored.key)
    with pytest.raises(FileNotFoundError):
        blobs.get(stored.key)


def test_a_recovered_temporary_file_is_adopted_under_its_key(blobs: Any, tmp_path: Path) -> None:
    left = tmp_path / "blobs" / ".incoming-1.tmp"
    left.parent.mkdir(parents=True, exist_ok=True)
    left.write_bytes(DATA)
    assert blobs.read_staged(left, 1) == DATA
    key = blobs.key_for(1, "1.2.3", hashlib.sha256(DATA).hexdigest())
    blobs.adopt(left, key)
    assert not left.exists()
    assert blobs.get(key) == DATA
