"""FHIR R4: ServiceRequest for orders (``service_request``) and the server's own
resources (``interactions``: OperationOutcome, searchset Bundles, CapabilityStatement).
"""
