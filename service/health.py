"""What a load balancer and Prometheus ask of every replica of ``cre serve``, whatever it serves:
``/healthz`` (up, and its Cassandra session answers) and ``/metrics`` (the registry the
service's routes and its ingest manager count in)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import generate_latest

from service.dependencies import RegistryDep, SessionDep

router = APIRouter()


@router.get("/healthz")
def healthz(session: SessionDep) -> dict:
    session.execute("SELECT now() FROM system.local")
    return {"status": "ok"}


@router.get("/metrics", response_class=PlainTextResponse)
def metrics(registry: RegistryDep) -> Response:
    return Response(generate_latest(registry), media_type="text/plain; version=0.0.4")
