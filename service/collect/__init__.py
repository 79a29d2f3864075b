"""The collection service's side of ``cre serve``: the tenants' routes (``routes``: token,
constraints, uploads and their statuses), the upload door (``receiving``, with the META check
of ``meta_probe``) and the ingest manager that runs what lands."""
