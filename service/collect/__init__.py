"""The collection service's side of ``cre serve``: the tenants, their uploads (the routes,
the ``uploads`` and ``upload_names`` tables) and the ingest manager that runs what lands."""
