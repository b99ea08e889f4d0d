"""Which facilities' studies a DIMSE peer may query and retrieve.

Decided once per association by :mod:`gate` (registered AE title, address,
certificate): a facility's AE, or a node registered for a facility, sees that
facility; a node registered without a facility (a reading hub) sees every
facility; on an open platform (no accounts yet) any other AE sees the default
facility, the one its C-STOREs land in.
"""

from __future__ import annotations

from typing import Any

from telerad.adapters.dimse.gate import peer_of
from telerad.services.platform import Platform
from telerad.services.studies import Scope


def facility_scope(platform: Platform, assoc: Any) -> frozenset[int] | None:
    """The facility ids visible to the peer of ``assoc``; ``None`` means every facility."""
    return peer_of(platform, assoc).scope


def scope_of(platform: Platform, assoc: Any) -> Scope:
    """What the peer of ``assoc`` sees, as the study use cases take it."""
    return Scope.of_peer(peer_of(platform, assoc))
