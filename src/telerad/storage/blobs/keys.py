"""Per-facility data keys for encryption at rest, wrapped by the master key.

Each facility gets a random 256-bit data key on its first stored object. Only
the key wrapped with the master key (AES key wrap, RFC 3394) is kept in the
index; the master key itself lives outside it (``TELERAD_MASTER_KEY`` or a key
file), so a copy of the database and the blobs without it reveals nothing.
Rotating the master key means re-wrapping these rows, not re-encrypting blobs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import threading
from pathlib import Path

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap
from sqlalchemy import Engine, insert, select
from sqlalchemy.exc import IntegrityError

from telerad.storage.db import tables as t


class MasterKeyError(RuntimeError):
    """The master key is missing, malformed, or not the one that wrapped the data keys."""


def load_master_key(value: str | None, path: Path | None) -> bytes | None:
    """The master key from its base64 text or a file holding it; None when neither is set."""
    if path is not None:
        try:
            value = path.read_text().strip()
        except OSError as exc:
            raise MasterKeyError(
                f"TELERAD_MASTER_KEY_FILE: cannot read {path}: {exc.strerror}"
            ) from exc
    if not value:
        return None
    try:
        key = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MasterKeyError("the master key must be 32 bytes in base64") from exc
    if len(key) != 32:
        raise MasterKeyError("the master key must be 32 bytes in base64")
    return key


def master_key_id(master: bytes) -> str:
    return hashlib.sha256(b"telerad-master\0" + master).hexdigest()[:16]


class FacilityKeys:
    def __init__(self, engine: Engine, master: bytes) -> None:
        self.engine = engine
        self._master = master
        self.master_id = master_key_id(master)
        self._keys: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def check_master(self) -> None:
        """Refuse to start with a master key other than the one that wrapped the keys."""
        with self.engine.connect() as conn:
            other = conn.execute(
                select(t.facility_key.c.master_key_id)
                .where(t.facility_key.c.master_key_id != self.master_id)
                .limit(1)
            ).scalar()
        if other is not None:
            raise MasterKeyError(
                f"the data keys were wrapped by master key {other}, not by the configured "
                f"one ({self.master_id})"
            )

    def key(self, facility_id: int) -> bytes:
        """The facility's data key, created on first use."""
        with self._lock:
            found = self._keys.get(facility_id)
        if found is not None:
            return found
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.facility_key).where(t.facility_key.c.facility_id == facility_id)
            ).first()
        if row is None:
            fresh = os.urandom(32)
            try:
                with self.engine.begin() as conn:
                    conn.execute(
                        insert(t.facility_key).values(
                            facility_id=facility_id,
                            master_key_id=self.master_id,
                            wrapped_key=base64.b64encode(
                                aes_key_wrap(self._master, fresh)
                            ).decode(),
                        )
                    )
                key = fresh
            except IntegrityError:  # created concurrently: use that one
                return self.key(facility_id)
        else:
            if row.master_key_id != self.master_id:
                raise MasterKeyError(
                    f"facility {facility_id}'s data key needs master key {row.master_key_id}"
                )
            try:
                key = aes_key_unwrap(self._master, base64.b64decode(row.wrapped_key))
            except InvalidUnwrap as exc:
                raise MasterKeyError(f"facility {facility_id}'s data key does not unwrap") from exc
        with self._lock:
            self._keys[facility_id] = key
        return key
