"""Which facilities' studies a DIMSE peer may query and retrieve, by its calling AE title.

An AE title is not authentication; this only keeps facilities apart on the
network the way the archive's configuration says:

* the AE title of a facility, or a node registered for a facility: that facility;
* a node registered without a facility (a reading workstation, a hub): every facility;
* any other AE title: the default facility, the one its C-STOREs land in.
"""

from __future__ import annotations

from telerad.bootstrap import Platform


def facility_scope(platform: Platform, calling_ae: str) -> frozenset[int] | None:
    """The facility ids visible to ``calling_ae``; ``None`` means every facility."""
    ae = calling_ae.strip()
    facility = platform.index.facility_by_ae(ae)
    if facility is not None:
        return frozenset({facility.id})
    node = platform.index.node_by_ae(ae)
    if node is not None:
        return None if node.facility_id is None else frozenset({node.facility_id})
    return frozenset({platform.default_facility().id})
