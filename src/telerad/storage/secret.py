"""The platform secret: signs bearer tokens and encrypts TOTP seeds.

From ``TELERAD_SECRET_KEY`` when set (several machines must share it), otherwise
generated once into ``secret.key`` in the data dir, readable by the owner only.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path

KEY_FILE = "secret.key"


def load_or_create_secret(data_dir: Path, configured: str | None = None) -> bytes:
    if configured:
        if len(configured) < 32:
            raise ValueError("TELERAD_SECRET_KEY must be at least 32 characters")
        return configured.encode()
    path = data_dir / KEY_FILE
    try:
        return base64.b64decode(path.read_bytes().strip(), validate=True)
    except FileNotFoundError:
        pass
    key = secrets.token_bytes(32)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(base64.b64encode(key) + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    try:
        os.link(tmp, path)  # the first process to create it wins; the others read it
    except FileExistsError:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    finally:
        tmp.unlink()
    return key
