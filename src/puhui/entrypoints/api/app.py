"""The ASGI application: its factory, the middleware every request passes, the offline docs
and the security schemes of the OpenAPI document.

The routes live in one router per caller (`platform`, `citizens`, `oversight`, `review`,
`erasures`, `accounts`, `public`, `operations`) and one for the carbon market (`market`:
operators, companies and the public registry); they find the puhui `App` and the settlement
on `request.app.state`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from puhui.bootstrap import App
from puhui.domain import signing
from puhui.entrypoints import consent_pages, dashboard, observability, settler
from puhui.entrypoints.api import (
    accounts,
    citizens,
    erasures,
    errors,
    market,
    operations,
    oversight,
    platform,
    public,
    review,
)
from puhui.entrypoints.api.deps import Settlement
from puhui.entrypoints.http import problem_doc
from puhui.service import ledger, submissions

log = logging.getLogger("puhui.api")

MAX_BODY_BYTES = 16 * 1024 * 1024
# A caller's own request id is kept (and logged) only if it is this tame.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# A Content-Length header: ASCII digits (`str.isdigit` would take `²`).
CONTENT_LENGTH = re.compile(r"^[0-9]{1,19}$")

# Who signs with which key.
COMPANY_KEY = (
    "X-Puhui-Key: the key id of a member platform or, on /v1/company/… routes, of the company "
    "itself (a platform's key is refused there, and a company's everywhere else)."
)

# Routes anyone may call.
PUBLIC = (
    "/v1/methodologies",
    "/v1/statistics",
    "/v1/rewards",
    "/v1/programmes",
    "/v1/footprints",
    "/v1/certificates",
    "/v1/registry/",
)


def create_app(app: App) -> FastAPI:
    """The ASGI application over an initialised puhui `App`."""
    # Under `puhui serve`, one settlement process settles every worker's submissions; without
    # it (tests, an ASGI server started by hand) this process settles its own.
    settlement: Settlement
    if os.environ.get(settler.ADDRESS_ENV):
        settlement = settler.RemoteSettlement(
            os.environ[settler.ADDRESS_ENV], bytes.fromhex(os.environ[settler.KEY_ENV])
        )
    else:
        settlement = submissions.GroupCommit(app, observe=observability.observe_group)

    # Seals the ledger every few seconds and signs a checkpoint every ten minutes: the
    # settlement process's, under `puhui serve` (one for every worker), else this process's.
    keeper = None if os.environ.get(settler.ADDRESS_ENV) else ledger.Keeper(app)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if keeper is not None:
            keeper.start()
        try:
            yield
        finally:
            if keeper is not None:
                await asyncio.to_thread(keeper.stop)
            await settlement.aclose()

    api = FastAPI(
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        title="puhui",
        version="1",
        summary="Clearing platform of the carbon-inclusion common mechanism.",
        description=(
            "Member platforms submit activity records (activity-record v1) and read their "
            "receipts. Platform requests are signed: see the `PlatformSignature` scheme and "
            "docs/api.md. Companies holding carbon units sign theirs (/v1/company/…) the same "
            "way, with their own key; the registry of units (/v1/registry/…) is public."
        ),
        responses={
            400: problem_doc(),
            413: problem_doc(),
            422: problem_doc(),
        },
    )
    api.state.puhui = app
    api.state.settlement = settlement
    errors.install(api)
    _install_docs(api)

    api.add_middleware(RequestLog)

    for routes in (
        platform, citizens, public, oversight, review, erasures, accounts, market, operations,
    ):  # fmt: skip
        api.include_router(routes.router)
    dashboard.install(api, app)
    consent_pages.install(api, app)
    _document_security(api)
    return api


class RequestLog:
    """Every request gets an id (the client's `X-Request-Id` if well formed), is refused with
    413 when its body is over the limit (at once when it declares its length, else as soon as
    it is read past the limit), and is counted, timed and logged with its route and status,
    413 and 5xx included. A plain ASGI middleware: it adds no task or stream per request, unlike
    `@app.middleware("http")`. (FastAPI's own `max_body_size` answers in plain text, not with
    a problem document.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        given = headers.get("x-request-id", "")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500
        length = headers.get("content-length")
        if length is not None and (
            not CONTENT_LENGTH.match(length) or int(length) > MAX_BODY_BYTES
        ):
            status = 413
            response = errors.render(Request(scope), errors.BodyTooLarge(MAX_BODY_BYTES))
            response.headers["X-Request-Id"] = request_id
            await response(scope, receive, send)
            self._log(scope, request_id, status, started)
            return

        async def sending(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append(
                    (b"x-request-id", request_id.encode("latin-1"))
                )
            await send(message)

        read = 0

        async def receiving() -> Any:
            nonlocal read
            message = await receive()
            if message["type"] == "http.request":
                read += len(message.get("body", b""))
                if read > MAX_BODY_BYTES:
                    raise errors.BodyTooLarge(MAX_BODY_BYTES)
            return message

        try:
            await self.app(scope, receiving, sending)
        finally:
            self._log(scope, request_id, status, started)

    @staticmethod
    def _log(scope: Any, request_id: str, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        template = getattr(scope.get("route"), "path", "unmatched")
        observability.REQUESTS.labels(scope["method"], template, status).inc()
        observability.LATENCY.labels(scope["method"], template).observe(elapsed)
        log.info(
            "request",
            extra={
                "request_id": request_id,
                "method": scope["method"],
                "path": scope["path"],
                "status": status,
                "ms": round(elapsed * 1000, 2),
            },
        )


def _install_docs(api: FastAPI) -> None:
    """Interactive docs at /docs with Swagger UI served from this server, never a CDN."""
    assets = Path(fastapi_offline.__file__).parent / "static"
    api.mount("/assets/docs", StaticFiles(directory=assets), name="docs-assets")

    @api.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title="puhui API",
            swagger_js_url="/assets/docs/swagger-ui-bundle.js",
            swagger_css_url="/assets/docs/swagger-ui.css",
            swagger_favicon_url="/assets/docs/favicon.png",
        )


def _document_security(api: FastAPI) -> None:
    """Describe the signature scheme in the OpenAPI document and require it on /v1 routes."""
    original = api.openapi

    def openapi() -> dict[str, Any]:
        if api.openapi_schema:
            return api.openapi_schema
        schema = original()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        description = (signing.__doc__ or "").strip()
        for header in (
            signing.HEADER_KEY,
            signing.HEADER_TIMESTAMP,
            signing.HEADER_NONCE,
            signing.HEADER_SIGNATURE,
        ):
            schemes[header] = {
                "type": "apiKey",
                "in": "header",
                "name": header,
                "description": {
                    signing.HEADER_SIGNATURE: description,
                    signing.HEADER_KEY: COMPANY_KEY,
                }.get(header, header),
            }
        signed: list[dict[str, list[str]]] = [{h: [] for h in schemes}]
        schemes["CitizenToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An access token from /oauth/token (the citizen's grant to a member "
            "platform, its scopes checked on every call; see docs/api.md), or the citizen's own "
            "session.",
        }
        schemes["StaffToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An operator's or regulator's token from `puhui staff add`.",
        }
        for path, methods in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                for method, operation in methods.items():
                    citizen = path == "/v1/me" or path.startswith("/v1/me/")
                    if citizen:
                        operation["security"] = [{"CitizenToken": []}]
                    elif path.startswith(("/v1/oversight/", "/v1/market/")):
                        operation["security"] = [{"StaffToken": []}]
                    elif (method, path) != ("post", "/v1/footprints") and (
                        method != "get" or not path.startswith(PUBLIC)
                    ):
                        operation["security"] = signed
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]
