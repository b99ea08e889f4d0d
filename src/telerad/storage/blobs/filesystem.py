"""Blobs as files: write to a temporary file, fsync, rename; directories synced in batches.

The fsync runs in a worker while the caller parses the instance (stage), and the
rename happens only once the bytes are on disk (commit). Directory entries are
synced every few seconds rather than per object: a crash before that leaves
the fsynced temporary file, which recovery moves into place.

File names come from a SHA-256 of the facility, SOP Instance UID and content,
never from the UID itself, so no peer-supplied text ever reaches the file
system. A facility's blobs are spread over 256 directories (``1/ab/<digest>.dcm``),
made ahead of use; archives written before kept two levels (``1/ab/cd/…``),
which stay readable since the index records each blob's key.

Creating a file or a directory (an inode) is the dearest metadata operation of
a store, so none happens while a peer waits: given a ``spare_dir`` on the same
file system, a background thread keeps a few empty temporary files ready there
per facility and makes the blob directories, and :meth:`FileBlobStore.stage`
only writes into one of those files (it creates one itself when none is ready).
Recovery treats a temporary file there like one in the blob tree.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import os
import threading
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from telerad.domain.model import StoredObject
from telerad.services.ports import IntegrityError

log = logging.getLogger(__name__)

#: The first bytes of an object sealed by telerad.storage.blobs.protected.
SEALED = b"TLRDENC1"
#: Objects smaller than this are synced and hashed in the caller's thread.
INLINE_BELOW = 64 * 1024
#: Directories a facility's blobs are spread over (named by the key's first two hex digits).
FAN_OUT = 256
#: Empty temporary files kept ready per facility; refilled when half are used.
SPARES = 32
#: Directories a facility's spare files are spread over (see FileBlobStore._refill).
SPARE_DIRS = 8


def _fsync_and_close(fd: int, sync: bool) -> None:
    try:
        if sync:
            # The data and the size: what reading the object back needs.
            os.fdatasync(fd)
    finally:
        os.close(fd)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()  # releases the GIL on large inputs


@dataclass
class Staged:
    """An object written to a temporary file, its fsync and digest under way."""

    facility_id: int
    path: Path
    size: int
    digest: Future[str]
    synced: Future[None]


class FileBlobStore:
    def __init__(self, root: Path, fsync: bool = True, spare_dir: Path | None = None) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.spare_dir = Path(spare_dir) if spare_dir is not None else None
        if self.spare_dir is not None:
            self.spare_dir.mkdir(parents=True, exist_ok=True)
            if self.spare_dir.stat().st_dev != self.root.stat().st_dev:
                self.spare_dir = None  # a rename cannot cross file systems
        self.fsync = fsync
        self._known_dirs: set[Path] = set()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="blob-sync")
        self._names = itertools.count()
        self._dirty_lock = threading.Lock()
        self._dirty_dirs: set[Path] = set()
        # Facility id -> paths of empty temporary files this process made for it.
        self._spares: dict[int, deque[str]] = {}
        self._prepared: set[int] = set()  # facilities whose FAN_OUT directories exist
        self._wanted = threading.Event()
        self._closing = False
        self._preparer: threading.Thread | None = None
        self._preparer_lock = threading.Lock()

    @staticmethod
    def key_for(facility_id: int, sop_instance_uid: str, content_sha256: str) -> str:
        # The content digest is part of the name, so two different objects sent
        # under one UID at the same moment can never overwrite each other.
        name = f"{facility_id}/{sop_instance_uid}/{content_sha256}"
        digest = hashlib.sha256(name.encode()).hexdigest()
        return f"{facility_id}/{digest[:2]}/{digest}.dcm"

    def path(self, key: str) -> str:
        return str(self.root / key)

    def put(
        self, facility_id: int, sop_instance_uid: str, data: bytes, sha256: str | None = None
    ) -> StoredObject:
        return self.commit(self.stage(facility_id, data, sha256), sop_instance_uid)

    def stage(self, facility_id: int, data: bytes, sha256: str | None = None) -> Staged:
        """Write ``data`` to a temporary file and start its fsync and digest in the
        background, so the caller can parse the instance while the disk works."""
        facility_id = int(facility_id)
        tmp, fd = self._temporary_file(facility_id)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        except BaseException:
            os.close(fd)
            Path(tmp).unlink(missing_ok=True)
            raise
        digest: Future[str] = Future()
        synced: Future[None] = Future()
        if len(data) < INLINE_BELOW:
            # Small objects: a hand-off to a worker costs more than it overlaps.
            try:
                _fsync_and_close(fd, self.fsync)
            except OSError as exc:
                synced.set_exception(exc)
            else:
                synced.set_result(None)
            digest.set_result(sha256 or _sha256(data))
        else:
            synced = self._pool.submit(_fsync_and_close, fd, self.fsync)
            if sha256 is not None:
                digest.set_result(sha256)
            else:
                digest = self._pool.submit(_sha256, data)
        return Staged(facility_id, Path(tmp), len(data), digest, synced)

    def _temporary_file(self, facility_id: int) -> tuple[str, int]:
        """A temporary file to write an object into: a spare if one is ready."""
        spares = self._spares.get(facility_id)
        if spares is None:
            spares = self._start_facility(facility_id)
        while spares:
            try:
                tmp = spares.popleft()
            except IndexError:
                break
            try:
                fd = os.open(tmp, os.O_WRONLY)
            except OSError:
                continue  # removed under us (a clean-up by hand): take the next
            if len(spares) <= SPARES // 2:
                self._wanted.set()
            return tmp, fd
        self._wanted.set()
        directory = self.root / str(facility_id)
        if directory not in self._known_dirs:
            directory.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(directory)
        return self._create_temporary(directory)

    def _create_temporary(self, directory: Path) -> tuple[str, int]:
        # Unique within this process by a counter, across processes by the pid;
        # O_EXCL still guards against a leftover of an earlier process.
        while True:
            tmp = str(directory / f".incoming-{os.getpid()}-{next(self._names)}.tmp")
            try:
                return tmp, os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue

    def _start_facility(self, facility_id: int) -> deque[str]:
        spares: deque[str] = deque()
        with self._preparer_lock:
            spares = self._spares.setdefault(facility_id, spares)
            if self._preparer is None and not self._closing and self.spare_dir is not None:
                self._preparer = threading.Thread(
                    target=self._prepare, name="blob-prepare", daemon=True
                )
                self._preparer.start()
        self._wanted.set()
        return spares

    def _prepare(self) -> None:
        """Background: make each facility's directories and keep spare temporary files."""
        while True:
            self._wanted.wait()
            self._wanted.clear()
            if self._closing:
                return
            try:
                for facility_id, spares in list(self._spares.items()):
                    self._refill(facility_id, spares)
            except OSError as exc:  # a full or read-only disk: stage() creates its own
                log.warning("cannot prepare blob files: %s", exc)

    def _refill(self, facility_id: int, spares: deque[str]) -> None:
        base = self.root / str(facility_id)
        if base not in self._known_dirs:
            base.mkdir(parents=True, exist_ok=True)
            self._known_dirs.add(base)
            with self._dirty_lock:
                self._dirty_dirs.add(self.root)
        # A new facility gets a few spares first, then its directories, then the rest.
        first = SPARES if facility_id in self._prepared else SPARES // 4
        self._fill(facility_id, spares, first)
        if facility_id not in self._prepared:
            for i in range(FAN_OUT):
                if self._closing:
                    return
                self._fan_out_dir(base, i)
            self._prepared.add(facility_id)
            self._fill(facility_id, spares, SPARES)

    def _fill(self, facility_id: int, spares: deque[str], count: int) -> None:
        # Spares go round a few directories: a file being created holds its
        # directory's lock, which stage()'s rename out of it would wait for.
        assert self.spare_dir is not None
        slot = len(spares)
        while len(spares) < count and not self._closing:
            directory = self.spare_dir / str(facility_id) / str(slot % SPARE_DIRS)
            if directory not in self._known_dirs:
                directory.mkdir(parents=True, exist_ok=True)
                self._known_dirs.add(directory)
            tmp, fd = self._create_temporary(directory)
            os.close(fd)
            spares.append(tmp)
            slot += 1

    def _fan_out_dir(self, base: Path, i: int) -> Path:
        directory = base / f"{i:02x}"
        if directory not in self._known_dirs:
            directory.mkdir(exist_ok=True)
            self._known_dirs.add(directory)
            with self._dirty_lock:
                self._dirty_dirs.add(base)
        return directory

    def close(self) -> None:
        """Stop preparing and remove the spare temporary files nobody wrote into."""
        with self._preparer_lock:
            self._closing = True
            preparer, self._preparer = self._preparer, None
        self._wanted.set()
        if preparer is not None:
            preparer.join(timeout=10)
        for spares in self._spares.values():
            while spares:
                with contextlib.suppress(OSError):
                    os.unlink(spares.popleft())

    def commit(self, staged: Staged, sop_instance_uid: str) -> StoredObject:
        """Move a staged object to its final name once it is on disk."""
        try:
            staged.synced.result()
            digest = staged.digest.result()
            key = self.key_for(staged.facility_id, sop_instance_uid, digest)
            target = self.root / key
            directory = target.parent
            if directory not in self._known_dirs:
                directory.mkdir(parents=True, exist_ok=True)
                self._known_dirs.add(directory)
            os.replace(staged.path, target)
        except BaseException:
            staged.path.unlink(missing_ok=True)
            raise
        # The bytes are on disk under the temporary name, which a crash cannot
        # lose; the rename reaches the disk with the next directory sync
        # (sync_directories, every few seconds). Until then a crash leaves the
        # fsynced temporary file, and start-up recovery puts it in place.
        with self._dirty_lock:
            self._dirty_dirs.add(directory)
        return StoredObject(key=key, size=staged.size, sha256=digest)

    def sync_directories(self) -> None:
        """Make every rename so far durable."""
        with self._dirty_lock:
            dirty, self._dirty_dirs = self._dirty_dirs, set()
        if not self.fsync:
            return
        for directory in dirty:
            fd = os.open(directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def incomplete(self) -> Iterator[tuple[Path, int]]:
        """Temporary files a crash left behind (written or spare), with their facility id."""
        places = [(self.root, "*/.incoming-*.tmp")]
        if self.spare_dir is not None:
            places.append((self.spare_dir, "*/*/.incoming-*.tmp"))
        for base, pattern in places:
            for path in base.glob(pattern):
                try:
                    yield path, int(path.relative_to(base).parts[0])
                except ValueError:
                    continue

    def adopt(self, path: Path, key: str) -> None:
        """Move a recovered temporary file to its key, durably."""
        target = self.root / key
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(path, target)
        fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def discard(self, staged: Staged) -> None:
        """Drop a staged object (it was refused before being kept)."""
        staged.synced.exception()  # the descriptor is closed once this is done
        staged.path.unlink(missing_ok=True)

    def get(self, key: str, sha256: str | None = None) -> bytes:
        data = (self.root / key).read_bytes()
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            if data.startswith(SEALED):
                raise IntegrityError(f"stored object {key} is encrypted and no master key is set")
            raise IntegrityError(f"stored object {key} does not match its recorded SHA-256")
        return data

    def delete(self, key: str) -> None:
        (self.root / key).unlink(missing_ok=True)

    def read_staged(self, path: Path, facility_id: int) -> bytes:
        return path.read_bytes()

    def written_since(self, timestamp: float) -> Iterator[tuple[str, int]]:
        """(key, facility id) of every blob whose file was written at or after ``timestamp``."""
        for path in itertools.chain(self.root.glob("*/*/*.dcm"), self.root.glob("*/*/*/*.dcm")):
            try:
                if path.stat().st_mtime >= timestamp:
                    key = path.relative_to(self.root).as_posix()
                    yield key, int(key.split("/", 1)[0])
            except (OSError, ValueError):
                continue
