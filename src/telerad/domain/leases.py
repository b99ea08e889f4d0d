"""A lease: one process holds a platform-wide duty until it expires."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Lease:
    name: str
    holder: str  # the process's id
    address: str  # where the holder serves HTTP (followers forward to it)
    expires_at: datetime
