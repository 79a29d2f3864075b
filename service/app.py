"""The application of ``cre serve``: the collection routes, ``/healthz`` and ``/metrics``, and
the operations console when there are operators, over one ``Shared`` (``dependencies``)."""

from __future__ import annotations

from typing import Optional

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from service import health, unavailable
from service.audit import AuditTrail
from service.collect import routes as collect
from service.console import routes as console
from service.console.actions import ActionRunner
from service.console.session import Console
from service.dependencies import Settings, Shared


def create_app(settings: Settings, session, *, audit: AuditTrail,
               registry: Optional[CollectorRegistry] = None,
               actions: Optional[ActionRunner] = None) -> FastAPI:
    """The service's application; ``session`` is a Cassandra session on the keyspace,
    ``audit`` records every login, refused token and upload, and ``/metrics`` shows
    ``registry`` (shared with the ingest manager) with the service's own metrics added. With
    ``settings.operators_path``, the operations console is at ``/console`` (``actions`` None:
    it only reads). While Cassandra cannot be reached, every route answers 503
    (``unavailable``)."""
    app = FastAPI(title="CRE Integration collection service", docs_url=None, redoc_url=None)
    shared = Shared.build(settings, session, audit,
                          CollectorRegistry() if registry is None else registry)
    app.state.shared = shared
    if settings.operators_path is not None:
        app.state.console = Console.build(shared, settings.operators_path, actions)
        app.include_router(console.router)
        for error, handler in console.HANDLERS.items():
            app.add_exception_handler(error, handler)
    app.state.collect = collect.Collection.build(shared)
    app.include_router(collect.router)
    app.include_router(health.router)
    for error, handler in unavailable.HANDLERS.items():
        app.add_exception_handler(error, handler)
    return app
