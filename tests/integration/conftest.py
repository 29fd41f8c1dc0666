"""Fixtures of the HTTP tests: the ASGI application and signing member-platform clients."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from fastapi.testclient import TestClient

from puhui.bootstrap import App
from puhui.domain import signing
from puhui.entrypoints.api import create_app
from puhui.service import admin, credentials
from tests.conftest import NOW


@dataclass
class Platform:
    """A member platform's client: its credentials and a signing HTTP client."""

    client: TestClient
    creds: credentials.Credentials
    timestamp: int = int(NOW.timestamp())

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        nonce: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        data = raw if raw is not None else b"" if body is None else json.dumps(body).encode()
        signed = signing.signed_headers(
            self.creds.key_id,
            self.creds.secret,
            method,
            path,
            data,
            self.timestamp,
            nonce or secrets.token_hex(16),
        )
        all_headers = {"content-type": "application/json", **signed, **(headers or {})}
        return self.client.request(method, path, content=data, headers=all_headers)

    def submit(self, records: list[dict[str, Any]], **more: Any) -> Any:
        return self.request("POST", "/v1/records", {"records": records}, **more)


@pytest.fixture
def client(app: App) -> Iterator[TestClient]:
    with TestClient(create_app(app)) as c:
        yield c


@pytest.fixture
def amap(app: App, client: TestClient) -> Platform:
    admin.add_platform(app, "amap")
    return Platform(client, credentials.issue(app, "amap"))


@pytest.fixture
def didi(app: App, client: TestClient) -> Platform:
    admin.add_platform(app, "didi")
    return Platform(client, credentials.issue(app, "didi"))
