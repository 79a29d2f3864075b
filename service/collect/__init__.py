"""The collection service's side of ``cre serve``: the tenants' routes (``routes``: token,
constraints, uploads and their statuses, logout), the upload door (``receiving``, with the META
check of ``meta_probe``; ``slots``, the uploads a tenant may have in progress at once) and the
ingest manager that runs what lands."""
