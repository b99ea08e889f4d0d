"""Which facility a write belongs to: the one admission rule for DIMSE, HL7, STOW-RS and
import (issue 10, part 4), over the fake index."""

from __future__ import annotations

import pytest
from tests.fakes.index import FakeIndex

from telerad.domain.identity import Permission, Principal, Role
from telerad.domain.model import Facility, Node
from telerad.services.admission import Admission, FacilityNeeded, NoSuchFacility


def _check(host: str, pin: str, address: str, cert: str | None) -> bool:
    """Registered host given as an exact address here (adapters.peers resolves names)."""
    return (not host or host == address) and (not pin or pin == cert)


def _setup(users: bool = True) -> tuple[Admission, FakeIndex, dict[str, Facility]]:
    index = FakeIndex()
    north = index.add_facility("North", "NORTHCT", host="10.0.0.5")
    south = index.add_facility("South", "SOUTHCT", cert_sha256="ab" * 32)
    default = index.add_facility("DEFAULT")
    index.add_node(Node("HUB", "10.0.0.9", 104))
    index.add_node(Node("NORTHPACS", "10.0.0.7", 104, facility_id=north.id))
    admission = Admission(index, lambda: default, lambda: users, _check)
    return admission, index, {"north": north, "south": south, "default": default}


def _who(role: Role, facilities: frozenset[int] | None) -> Principal:
    return Principal("x", role, facilities, frozenset({Permission.WRITE}))


def test_dicom_peers() -> None:
    admission, _, f = _setup()
    north = admission.peer(" NORTHCT ", "10.0.0.5", None)
    assert north is not None and (north.store_facility_id, north.scope) == (
        f["north"].id,
        frozenset({f["north"].id}),
    )
    assert admission.peer("NORTHCT", "10.0.0.6", None) is None  # spoofed from elsewhere
    assert admission.peer("SOUTHCT", "1.2.3.4", "ab" * 32) is not None
    assert admission.peer("SOUTHCT", "1.2.3.4", "cd" * 32) is None  # wrong certificate
    hub = admission.peer("HUB", "10.0.0.9", None)
    assert hub is not None and (hub.store_facility_id, hub.scope) == (f["default"].id, None)
    pacs = admission.peer("NORTHPACS", "10.0.0.7", None)
    assert pacs is not None and pacs.store_facility_id == f["north"].id
    assert admission.peer("STRANGER", "10.0.0.5", None) is None  # accounts exist: refused


def test_an_open_platform_admits_anyone_for_the_default_facility() -> None:
    admission, _, f = _setup(users=False)
    peer = admission.peer("STRANGER", "127.0.0.1", None)
    assert peer is not None and not peer.registered
    assert peer.store_facility_id == f["default"].id


def test_hl7_senders() -> None:
    admission, _, f = _setup()
    assert admission.sender("North", "10.0.0.5", None) == f["north"]
    assert admission.sender("North", "10.0.0.8", None) is None
    assert admission.sender("Nowhere", "10.0.0.5", None) is None
    assert admission.sender("", "10.0.0.5", None) is None


def test_stow_accounts() -> None:
    admission, index, f = _setup()
    network = _who(Role.NETWORK_ADMIN, None)
    tech = _who(Role.FACILITY_USER, frozenset({f["north"].id}))
    reader = _who(Role.RADIOLOGIST, frozenset({f["north"].id, f["south"].id}))
    assert admission.account(network, None, None) == f["default"]
    assert admission.account(tech, None, None) == f["north"]
    assert admission.account(reader, "South", None) == f["south"]
    with pytest.raises(FacilityNeeded, match="several facilities"):
        admission.account(reader, None, None)
    with pytest.raises(NoSuchFacility, match="no facility named South"):
        admission.account(tech, "South", None)  # exists, but not theirs: the same answer
    with pytest.raises(NoSuchFacility):
        admission.account(tech, "Nowhere", None)


def test_import_creates_the_facility_it_names() -> None:
    admission, index, f = _setup()
    assert admission.named(None) == f["default"]
    assert admission.named("North") == f["north"]
    made = admission.named("East")
    assert index.facility_by_name("East") == made
