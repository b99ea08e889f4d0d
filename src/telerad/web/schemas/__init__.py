"""API schemas: what the REST API takes and answers, apart from the domain objects."""
