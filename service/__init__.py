"""``cre serve``: the HTTP application, not a pipeline.

One FastAPI application (``app.py``) composed of the routers of two packages that never import
each other: ``collect/`` (tenants' uploads, tokens, statuses, and the ingest manager that runs
what lands) and ``console/`` (the operators' pages and actions), with ``health.py``'s
``/healthz`` and ``/metrics``. What both need sits here, below them: ``dependencies.py`` (the
settings and the parts every route may ask for, the current tenant), ``accounts.py`` (the
Argon2 account files), ``tenants.py``, ``uploads.py`` (owns ``uploads``, ``upload_names``),
``access.py`` (tokens and the login throttle), ``audit.py`` (the audit trail) and
``unavailable.py`` (the 503 every route answers while Cassandra cannot be reached). Around
the application, ``serving.py`` runs it under uvicorn with the limits on what a client may
hold (deadlines for a request's head and body, the head's size).
"""
