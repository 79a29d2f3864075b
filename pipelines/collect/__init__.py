"""The collection service: the authenticated upload service (``cre serve``), its tenants and
uploads, the ingest manager that runs what lands, and the sender's ``fetchdata`` client."""
