"""The common mechanism's registry over HTTP (`puhui federation serve`, docs/federation.md).

- `POST /v1/federation/batches`: a node's batch, signed (`Puhui-Node`, `Puhui-Signature`); the
  answer is signed by the registry in `Puhui-Signature`. The body is read and signed as bytes:
  what was signed is what is registered.
- `POST /v1/federation/inbox`: a node's signed request for the units other nodes sent it (and
  the registry's figures); the answer is signed like a batch's.
- `GET /v1/federation/registry`: the protocol, the registry's public key, its nodes.
- `GET /v1/federation/methodologies`: the shared methodology catalogue.
- `GET /v1/federation/oversight`: every node's figures and the duplicates between nodes, for
  the registry's staff (a staff token of its database, operator or regulator): counts only, no
  personal data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from puhui.bootstrap import App
from puhui.domain.federation import PROTOCOL
from puhui.entrypoints.api import errors
from puhui.entrypoints.api.deps import StaffDep
from puhui.service import federation

MAX_BATCH_BYTES = 4 * 2**20


def create_registry_app(app: App) -> FastAPI:
    """The registry's HTTP API on an installation's database."""
    api = FastAPI(
        title="puhui common-mechanism registry",
        version=PROTOCOL,
        description="Registers the claims of the exchanges' nodes in one global order and "
        "answers each: first, or a duplicate of another node's claim (docs/federation.md).",
    )
    errors.install(api)
    # Staff tokens issued on the registry's own database (`puhui staff add`) read oversight.
    api.state.puhui = app
    own_key = federation.public_key(app)

    @api.post(
        "/v1/federation/batches",
        summary="Register a node's batch of claims and withdrawals",
        response_class=Response,
    )
    async def batches(request: Request) -> Response:
        # One batch at a time takes the registry's write lock; the event loop is not held.
        return await _signed(request, federation.receive)

    @api.post(
        "/v1/federation/inbox",
        summary="The units other nodes sent a node (and, when asked, every node's figures)",
        response_class=Response,
    )
    async def inbox(request: Request) -> Response:
        return await _signed(request, federation.inbox)

    async def _signed(
        request: Request, handle: Callable[[App, str, bytes, str], tuple[bytes, str]]
    ) -> Response:
        """A node's signed request, read as bytes (what was signed is what is handled), handled
        off the event loop; the answer signed by the registry."""
        body = await request.body()
        if len(body) > MAX_BATCH_BYTES:
            raise errors.BodyTooLarge(MAX_BATCH_BYTES)
        node = request.headers.get(federation.HEADER_NODE, "")
        signature = request.headers.get(federation.HEADER_SIGNATURE, "")
        answer, answer_signature = await run_in_threadpool(handle, app, node, body, signature)
        return Response(
            answer,
            media_type="application/json",
            headers={federation.HEADER_SIGNATURE: answer_signature},
        )

    @api.get("/v1/federation/registry", summary="The registry's key and nodes")
    def registry() -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "public_key": own_key,
            "nodes": [n["code"] for n in federation.registry(app).nodes()],
        }

    @api.get("/v1/federation/methodologies", summary="The shared methodology catalogue")
    def methodologies() -> dict[str, Any]:
        return {"methodologies": federation.registry(app).catalogue()}

    @api.get("/v1/federation/oversight", summary="Every node's figures and duplicates")
    def oversight(_staff: StaffDep) -> dict[str, Any]:
        return federation.figures(app)

    @api.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return api
