"""The pynetdicom that the tuned modules were written against.

The DIMSE adapter subclasses pynetdicom layer by layer (``tuned_transport``,
``tuned_dul``, ``tuned_dimse``, ``tuned_association``, ``tuned_ae``, and the
ACSE in ``gate``), and several of its overrides are copies of pynetdicom's
methods with one thing changed (a reactor loop without its sleep, a PDU read
with a length cap). A new pynetdicom may change what those copies silently
replace. So the version is pinned exactly (``pynetdicom==`` in pyproject.toml,
the same as :data:`PYNETDICOM_VERSION`), and :data:`OVERRIDDEN` fingerprints
the source of every pynetdicom method overridden or copied here;
tests/unit/test_dimse_upstream.py fails when either no longer matches.

To bump pynetdicom: read each method below in the new version against
telerad's override (the second column), carry over what changed, then update
the version here and in pyproject.toml (docs/conformance.md names it too:
the Implementation Version Name is pynetdicom's) and the fingerprints.
"""

from __future__ import annotations

#: The pynetdicom release the overrides were written for (pyproject.toml pins it).
PYNETDICOM_VERSION = "3.0.4"

#: pynetdicom method → (its override or copy in telerad.adapters.dimse, the first
#: 16 hex digits of the SHA-256 of ``inspect.getsource`` of the method).
OVERRIDDEN: dict[str, tuple[str, str]] = {
    # transport
    "pynetdicom.transport.AssociationSocket._create_socket": (
        "tuned_transport.TunedSocket._create_socket",
        "bf8b92b106c8aa07",
    ),
    "pynetdicom.transport.AssociationSocket.recv": (
        "tuned_transport.TunedSocket.recv",
        "6bc20a33b1b7cfe7",
    ),
    "pynetdicom.transport.AssociationSocket.send": (
        "tuned_transport.TunedSocket.send",
        "1ea8158c0b51faca",
    ),
    "pynetdicom.transport.AssociationServer.get_request": (
        "tuned_transport.TunedAssociationServer.get_request",
        "925a4f3a3042f6e4",
    ),
    "pynetdicom.transport.RequestHandler.handle": (
        "tuned_transport.TunedRequestHandler.handle",
        "034823fb4df3a874",
    ),
    "pynetdicom.transport.RequestHandler._create_association": (
        "tuned_transport.TunedRequestHandler._create_association",
        "05c8d12b79863cdb",
    ),
    # DICOM upper layer
    "pynetdicom.dul.DULServiceProvider.__init__": (
        "tuned_dul.TunedDUL.__init__",
        "c82dafa9438ddf70",
    ),
    "pynetdicom.dul.DULServiceProvider.kill_dul": (
        "tuned_dul.TunedDUL.kill_dul",
        "5ceccf8dd01c2072",
    ),
    "pynetdicom.dul.DULServiceProvider.stop_dul": (
        "tuned_dul.TunedDUL.stop_dul",
        "28a7e0be126e7b30",
    ),
    "pynetdicom.dul.DULServiceProvider.run_reactor": (
        "tuned_dul.TunedDUL.run_reactor",
        "e3a10eb3a0931e48",
    ),
    "pynetdicom.dul.DULServiceProvider._read_pdu_data": (
        "tuned_dul.TunedDUL._read_pdu_data",
        "19f2d4e38c13c835",
    ),
    "pynetdicom.dul.DULServiceProvider._decode_pdu": (
        "tuned_dul.TunedDUL._read_pdu_data",
        "fc71dd1bf853e1ce",
    ),
    # DIMSE
    "pynetdicom.dimse.DIMSEServiceProvider.__init__": (
        "tuned_dimse.FastDIMSE.__init__",
        "bbecd186810e7700",
    ),
    "pynetdicom.dimse.DIMSEServiceProvider.send_msg": (
        "tuned_dimse.FastDIMSE.send_msg",
        "a839cf2fb46976d9",
    ),
    "pynetdicom.dimse.DIMSEServiceProvider.receive_primitive": (
        "tuned_dimse.FastDIMSE.receive_primitive",
        "5f99c86b14a15cef",
    ),
    "pynetdicom.service_class.StorageServiceClass.SCP": (
        "tuned_dimse.FastDIMSE._serve_store",
        "63afca7fc6c6e7ee",
    ),
    # association
    "pynetdicom.association.Association.__init__": (
        "tuned_association.TunedAssociation.__init__",
        "eb07516b8009ad8f",
    ),
    "pynetdicom.association.Association._run_reactor": (
        "tuned_association.TunedAssociation._run_reactor",
        "f28838c5559e462a",
    ),
    "pynetdicom.association.Association.kill": (
        "tuned_association.TunedAssociation.kill",
        "8f9713666a7f4cff",
    ),
    "pynetdicom.association.Association.send_c_store": (
        "tuned_association.TunedAssociation.send_c_store, send_c_store_bytes",
        "fa5a8127f349f8e7",
    ),
    "pynetdicom.association.Association.send_n_event_report": (
        "tuned_association.TunedAssociation.send_event_report",
        "e3d427e77369680c",
    ),
    "pynetdicom.ae.ApplicationEntity.associate": (
        "tuned_ae.TunedAE.associate",
        "dbc8cf47090386b2",
    ),
    "pynetdicom.acse.ACSE.__init__": (
        "gate.GatedACSE.__init__",
        "c2854b7e9224e9a5",
    ),
    "pynetdicom.acse.ACSE._negotiate_as_acceptor": (
        "gate.GatedACSE._negotiate_as_acceptor",
        "fffd360957c42a8e",
    ),
}
