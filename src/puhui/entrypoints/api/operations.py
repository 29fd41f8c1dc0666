"""Routes of the people running the server: liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import PlainTextResponse

from puhui.entrypoints import observability
from puhui.entrypoints.api.deps import AppDep
from puhui.entrypoints.api.schemas import Health
from puhui.entrypoints.http import problem_doc
from puhui.service import admin

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    """The process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, summary="Readiness", responses={503: problem_doc()})
def readyz(app: AppDep) -> Health:
    """The database is reachable, initialised, at the latest schema, with this key."""
    admin.check_ready(app)
    return Health(status="ok")


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=PlainTextResponse,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def metrics() -> Response:
    """Requests by route and status, latencies, records by receipt status."""
    payload, content_type = observability.metrics_payload()
    return Response(payload, media_type=content_type)
