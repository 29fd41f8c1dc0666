"""Schemathesis against the OpenAPI document, through the ASGI application, on SQLite and
PostgreSQL: generated requests, signed as a platform would sign them (and some left unsigned,
some sent in chunks), never make a server error or a response that breaks the document, and
every 413 and 5xx answered is counted in the metrics."""

from __future__ import annotations

import json
import re
import secrets
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from schemathesis import checks
from schemathesis.core import NOT_SET

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain import signing
from puhui.entrypoints.api import app as api_app
from puhui.entrypoints.api import create_app
from puhui.service import admin, credentials, ingest, market, oversight
from tests.builders import citizen_session, citizen_token, event, trip
from tests.citizen_routes import NEEDS, SCOPES, allowed

# The body limit of these tests, so that some generated bodies are over it.
LIMIT = 4096


@pytest.fixture
def live(database_url: str, tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """An application on the real clock (signatures carry the current time), one platform and
    one company, each with its key; bodies are limited to LIMIT bytes."""
    monkeypatch.setattr(api_app, "MAX_BODY_BYTES", LIMIT)
    app: App = bootstrap(Settings(database_url, tmp_path / "subject.key"))
    admin.init(app)
    admin.add_platform(app, "amap")
    api = create_app(app)
    api.state.credentials = credentials.issue(app, "amap")
    market.add_company(app, "91350100M000100Y43", "Acme")
    api.state.company_credentials = credentials.issue_company(app, "91350100M000100Y43")
    ingest.ingest_records(app, "amap", [trip("t1"), event("e1")])
    # Citizen tokens of each scope alone, of every scope, and the citizen's own session.
    api.state.citizen_tokens = {
        scope: citizen_token(app, "13800138000", "amap", [scope]) for scope in SCOPES
    }
    api.state.citizen_tokens["every scope"] = citizen_token(app, "13800138000", "amap", SCOPES)
    api.state.citizen_tokens["session"] = citizen_session(app, "13800138000")
    api.state.staff_token = oversight.issue_staff_token(app, "ops", oversight.Role.OPERATOR).token
    with TestClient(api, raise_server_exceptions=False) as client:
        api.state.client = client
        yield api
    app.close()


# Not sent with the session: it would erase the citizen every later example reads (the
# citizen's own erasure is held by tests/integration/test_erasure.py).
DESTRUCTIVE = {"/v1/me/erasure"}


# The document does not depend on the database: read it from an application never connected.
DOCUMENT = create_app(bootstrap(Settings("sqlite://", Path("unused.key")))).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@given(case=schema.as_strategy())
@settings(
    max_examples=600,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_no_request_breaks_the_server_or_the_document(case: Any, live: Any) -> None:
    creds: credentials.Credentials = live.state.credentials
    body = b"" if case.body is NOT_SET else json.dumps(case.body).encode()
    if body and not secrets.randbelow(8):
        body += b" " * LIMIT  # the same JSON, over the limit
    path = case.formatted_path
    if case.query:
        path += "?" + urlencode(case.query, doseq=True)
    # Generated headers (an Idempotency-Key, say), then the caller's credentials.
    headers = {k: str(v) for k, v in (case.headers or {}).items()}
    headers["content-type"] = "application/json"
    citizen = case.path == "/v1/me" or case.path.startswith("/v1/me/")
    holder = None
    if citizen and secrets.randbelow(8):
        holders = sorted(live.state.citizen_tokens)
        if case.path in DESTRUCTIVE:
            holders.remove("session")
        holder = secrets.choice(holders)
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        headers["authorization"] = f"Bearer {live.state.citizen_tokens[holder]}"
    elif case.path.startswith(("/v1/oversight/", "/v1/market/")) and secrets.randbelow(8):
        headers["authorization"] = f"Bearer {live.state.staff_token}"
    elif case.path.startswith("/v1/") and secrets.randbelow(8):
        # A company signs its own routes with its own key (mostly), a platform the others.
        company = case.path.startswith("/v1/company/") and secrets.randbelow(8)
        signer = live.state.company_credentials if company else creds
        headers |= signing.signed_headers(
            signer.key_id, signer.secret, case.method, path, body, int(time.time()),
            secrets.token_hex(16),
        )  # fmt: skip
    client = live.state.client
    counted = _refusals_counted(client)
    if body and not secrets.randbelow(4):
        # Chunked: no Content-Length, the limit holds as the body is read.
        response = client.request(case.method, path, content=iter([body]), headers=headers)
    else:
        response = client.request(case.method, path, content=body, headers=headers)
    case.validate_response(response, checks=CHECKS)
    if holder is not None:
        # Never an answer outside the token's scope; never a refusal within it.
        may = allowed(holder, NEEDS[(case.method.upper(), case.path)])
        assert may or response.status_code in (403, 413, 422), (holder, case.path)
        if may:
            assert response.status_code != 403, (holder, case.path, response.text)
    refused = response.status_code == 413 or response.status_code >= 500
    assert _refusals_counted(client) == counted + refused, response.status_code


def _refusals_counted(client: TestClient) -> float:
    """Requests answered 413 or 5xx, as /metrics counts them."""
    total = 0.0
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("puhui_http_requests_total{") and re.search(
            r'status="(413|5[0-9][0-9])"', line
        ):
            total += float(line.rsplit(" ", 1)[1])
    return total
