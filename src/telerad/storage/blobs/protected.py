"""Blobs kept where each facility's data must live, encrypted with the facility's key.

A :class:`ProtectedBlobStore` sits in front of one :class:`FileBlobStore` per
storage location:

* **data residency**: a facility whose data region is configured
  (``TELERAD_STORAGE_REGIONS``) has its objects written under that region's root,
  and its keys carry the region (``@eu/…``) so reads find them wherever they are.
  A facility in a region with no configured storage cannot store at all: refusing
  is better than keeping data in the wrong place.
* **encryption at rest** (with a master key): each object is sealed with AES-256-GCM
  under its facility's data key (:mod:`keys`), the facility id bound in as
  associated data, so an object copied into another facility's place does not
  open. The SHA-256 recorded in the index is the plaintext's, checked after
  decryption like any read. Objects written before encryption was switched on
  stay readable as they are.

Without regions and without a master key the platform uses the FileBlobStore
directly; nothing here is on the path.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from telerad.domain.model import StoredObject
from telerad.services.ports import IntegrityError, StorageRefused
from telerad.storage.blobs.filesystem import SEALED, FileBlobStore, Staged
from telerad.storage.blobs.keys import FacilityKeys

MAGIC = SEALED
_NONCE = 12


class RegionUnavailable(StorageRefused):
    """A facility's data region has no storage configured here."""


@dataclass
class ProtectedStaged:
    """A staged object, described by its plaintext (size and digest) as the archive sees it."""

    region: str
    inner: Staged
    size: int
    digest: Future[str]

    @property
    def sha256(self) -> str:
        return self.digest.result()


def _facility_of(inner_key: str) -> int:
    return int(inner_key.split("/", 1)[0])


class ProtectedBlobStore:
    def __init__(
        self,
        default: FileBlobStore,
        regions: dict[str, FileBlobStore],
        region_of: Callable[[int], str],
        keys: FacilityKeys | None,
    ) -> None:
        self.default = default
        self.regions = regions
        self.region_of = region_of
        self.keys = keys
        self._lock = threading.Lock()

    # -- where ------------------------------------------------------------------------
    def _store(self, region: str) -> FileBlobStore:
        if not region:
            return self.default
        store = self.regions.get(region)
        if store is None:
            raise RegionUnavailable(f"no storage is configured for data region '{region}'")
        return store

    def _region(self, facility_id: int) -> str:
        return self.region_of(facility_id)

    def _split(self, key: str) -> tuple[str, str]:
        if key.startswith("@"):
            region, _, inner = key[1:].partition("/")
            return region, inner
        return "", key

    @staticmethod
    def _join(region: str, inner: str) -> str:
        return f"@{region}/{inner}" if region else inner

    # -- sealing ------------------------------------------------------------------------
    def _seal(self, facility_id: int, data: bytes) -> bytes:
        assert self.keys is not None
        nonce = os.urandom(_NONCE)
        aad = str(facility_id).encode()
        return MAGIC + nonce + AESGCM(self.keys.key(facility_id)).encrypt(nonce, data, aad)

    def _open(self, facility_id: int, raw: bytes, key: str) -> bytes:
        if not raw.startswith(MAGIC):
            return raw  # written before encryption was switched on
        if self.keys is None:
            raise IntegrityError(f"stored object {key} is encrypted and no master key is set")
        nonce = raw[len(MAGIC) : len(MAGIC) + _NONCE]
        try:
            return AESGCM(self.keys.key(facility_id)).decrypt(
                nonce, raw[len(MAGIC) + _NONCE :], str(facility_id).encode()
            )
        except InvalidTag as exc:
            raise IntegrityError(f"stored object {key} does not decrypt for its facility") from exc

    # -- the BlobStore port ---------------------------------------------------------------
    def key_for(self, facility_id: int, sop_instance_uid: str, content_sha256: str) -> str:
        inner = FileBlobStore.key_for(facility_id, sop_instance_uid, content_sha256)
        return self._join(self._region(facility_id), inner)

    def path(self, key: str) -> str:
        region, inner = self._split(key)
        return self._store(region).path(inner)

    def stage(self, facility_id: int, data: bytes, sha256: str | None = None) -> ProtectedStaged:
        region = self._region(facility_id)
        store = self._store(region)
        digest = sha256 or hashlib.sha256(data).hexdigest()
        payload = self._seal(facility_id, data) if self.keys is not None else data
        # The name derives from the plaintext digest, as without encryption.
        inner = store.stage(facility_id, payload, sha256=digest)
        done: Future[str] = Future()
        done.set_result(digest)
        return ProtectedStaged(region, inner, len(data), done)

    def commit(self, staged: ProtectedStaged, sop_instance_uid: str) -> StoredObject:
        stored = self._store(staged.region).commit(staged.inner, sop_instance_uid)
        return StoredObject(self._join(staged.region, stored.key), staged.size, staged.sha256)

    def put(
        self, facility_id: int, sop_instance_uid: str, data: bytes, sha256: str | None = None
    ) -> StoredObject:
        return self.commit(self.stage(facility_id, data, sha256), sop_instance_uid)

    def discard(self, staged: ProtectedStaged) -> None:
        self._store(staged.region).discard(staged.inner)

    def get(self, key: str, sha256: str | None = None) -> bytes:
        region, inner = self._split(key)
        data = self._open(_facility_of(inner), self._store(region).get(inner), key)
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise IntegrityError(f"stored object {key} does not match its recorded SHA-256")
        return data

    def delete(self, key: str) -> None:
        region, inner = self._split(key)
        self._store(region).delete(inner)

    def adopt(self, path: Path, key: str) -> None:
        region, inner = self._split(key)
        self._store(region).adopt(path, inner)

    def read_staged(self, path: Path, facility_id: int) -> bytes:
        return self._open(facility_id, path.read_bytes(), str(path.name))

    # -- housekeeping over every location ------------------------------------------------
    def _all(self) -> Iterator[tuple[str, FileBlobStore]]:
        yield "", self.default
        yield from self.regions.items()

    def sync_directories(self) -> None:
        for _region, store in self._all():
            store.sync_directories()

    def close(self) -> None:
        for _region, store in self._all():
            store.close()

    def incomplete(self) -> Iterator[tuple[Path, int]]:
        for _region, store in self._all():
            yield from store.incomplete()

    def written_since(self, timestamp: float) -> Iterator[tuple[str, int]]:
        for region, store in self._all():
            for inner, facility_id in store.written_since(timestamp):
                yield self._join(region, inner), facility_id
