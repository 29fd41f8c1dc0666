"""OAuth 2.0 for member platforms (RFC 6749 authorization code, RFC 7636 PKCE with S256
required), with Authlib's authorization server.

A member platform is an OAuth client whose id is its code and whose redirect URIs the operator
registered (`puhui platform redirect-uri`). Its app sends the citizen to `/oauth/authorize`
with a PKCE challenge; the citizen signs in to puhui, grants some of the scopes asked for (or
fewer) and a lifetime, and comes back to the app with an authorization code valid 60 seconds,
once. The app exchanges the code and its PKCE verifier at `/oauth/token` for an access token
(`service.citizens`) valid 15 minutes, never past the grant's expiry, and a refresh token; the
refresh token gets a new access token (and a new refresh token: each is good once) while the
grant is active, with its scopes or fewer. Apps are public clients
(`token_endpoint_auth_method: none`): PKCE is what binds the code to the app that asked.

Authlib knows no web framework here: `HttpRequest` is what the HTTP edge hands over (method,
address, headers, query and form), and an answer comes back as (status, body, headers).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from authlib.oauth2 import AuthorizationServer as _AuthorizationServer
from authlib.oauth2.rfc6749 import (
    AuthorizationCodeMixin,
    ClientMixin,
    JsonPayload,
    JsonRequest,
    OAuth2Payload,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc6749.errors import InvalidGrantError, InvalidRequestError
from authlib.oauth2.rfc7636 import CodeChallenge

from puhui.bootstrap import App
from puhui.domain import consent
from puhui.domain.consent import Grant, Scope
from puhui.service import citizens
from puhui.service import consent as consents

Answer = tuple[int, str, list[tuple[str, str]]]


@dataclass(frozen=True)
class HttpRequest:
    """An HTTP request as the OAuth endpoints read it."""

    method: str
    url: str
    headers: Mapping[str, str]
    query: Mapping[str, list[str]] = field(default_factory=dict)
    form: Mapping[str, list[str]] = field(default_factory=dict)


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, request: HttpRequest) -> None:
        merged: dict[str, list[str]] = {}
        for source in (request.query, request.form):
            for k, values in source.items():
                merged.setdefault(k, []).extend(values)
        self._datalist = merged

    @property
    def data(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._datalist.items() if v}

    @property
    def datalist(self) -> Any:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, request: HttpRequest) -> None:
        # Transport security is the deployment's (TLS ends in front of puhui): Authlib's own
        # check of the address the server sees would refuse every request behind a proxy.
        super().__init__(request.method, "https://puhui.invalid/", headers=dict(request.headers))
        self.uri = request.url
        self.payload = _Payload(request)
        self._http = request

    @property
    def args(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._http.query.items() if v}

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in self._http.form.items() if v}


class _JsonPayload(JsonPayload):  # type: ignore[misc]
    def __init__(self, body: Any) -> None:
        self._body = body

    @property
    def data(self) -> Any:
        return self._body


class Client(ClientMixin):  # type: ignore[misc]
    """A member platform as an OAuth client: a public client, PKCE required."""

    def __init__(self, platform: str, redirect_uris: list[str]) -> None:
        self.platform = platform
        self.redirect_uris = redirect_uris

    def get_client_id(self) -> str:
        return self.platform

    def get_default_redirect_uri(self) -> str | None:
        # An authorization names its redirect URI unless the platform registered only one.
        return self.redirect_uris[0] if len(self.redirect_uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        # Nothing asked for is refused (invalid_scope); an unknown scope is, before this.
        asked = [s for s in (scope or "").split() if s in consent.SCOPES]
        return consent.scope_text(Scope(s) for s in asked) or None

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in self.redirect_uris

    def check_client_secret(self, client_secret: str) -> bool:
        return False

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == "none"

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in ("authorization_code", "refresh_token")


@dataclass
class Approval:
    """What the citizen approved: the grant made, to hand to the authorization code."""

    grant: Grant


@dataclass
class StoredCode(AuthorizationCodeMixin):  # type: ignore[misc]
    """An authorization code as stored, once claimed."""

    grant_id: str
    redirect_uri: str
    scopes: str
    code_challenge: str
    code_challenge_method: str

    def get_redirect_uri(self) -> str:
        return self.redirect_uri

    def get_scope(self) -> str:
        return self.scopes


@dataclass
class StoredRefresh:
    """A refresh token as stored, once claimed."""

    grant_id: str
    scopes: str
    digest: str
    platform: str

    def get_scope(self) -> str:
        return self.scopes

    def check_client(self, client: Client) -> bool:
        return bool(client.platform == self.platform)


class S256Required(CodeChallenge):  # type: ignore[misc]
    """PKCE on every authorization, with the S256 method only."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]  # noqa: RUF012 (Authlib's attribute)

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE is required")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be S256")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):  # type: ignore[misc]
    """The authorization code grant over the consent ledger and the stored codes."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 (Authlib's attribute)

    @property
    def puhui(self) -> App:
        app: App = self.server.app
        return app

    def save_authorization_code(self, code: str, request: Any) -> None:
        approval: Approval = request.user
        app = self.puhui
        version, digest = consents.code_digest(app, code)
        now = app.clock()
        data = request.payload.data
        self.puhui.consent().add_authorization_code(
            {
                "code_digest": digest,
                "key_version": version,
                "platform": approval.grant.platform,
                "grant_id": approval.grant.id,
                "redirect_uri": request.payload.redirect_uri or "",
                "scopes": consent.scope_text(approval.grant.scopes),
                "code_challenge": data["code_challenge"],
                "code_challenge_method": data["code_challenge_method"],
                "created_at": now,
                "expires_at": now + timedelta(seconds=consent.AUTHORIZATION_CODE_TTL_S),
            }
        )

    def query_authorization_code(self, code: str, client: Client) -> StoredCode | None:
        # Claimed at once: a code is good for one exchange, even one that fails later.
        app = self.puhui
        _, digest = consents.code_digest(app, code)
        row = app.consent().claim_authorization_code(digest, client.platform, app.clock())
        if row is None:
            return None
        return StoredCode(
            str(row["grant_id"]), str(row["redirect_uri"]), str(row["scopes"]),
            str(row["code_challenge"]), str(row["code_challenge_method"]),
        )  # fmt: skip

    def delete_authorization_code(self, authorization_code: StoredCode) -> None:
        """Nothing to do: the code was claimed when it was read."""

    def authenticate_user(self, authorization_code: StoredCode) -> Grant | None:
        found = consents.find(self.puhui, authorization_code.grant_id)
        if found is None or found.state(self.puhui.clock()) is not consent.State.ACTIVE:
            return None
        return found


class RefreshGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """A new access token for a refresh token while its grant is active; each refresh token
    is good once and is replaced by the answer's."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]  # noqa: RUF012 (Authlib's attribute)
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def puhui(self) -> App:
        app: App = self.server.app
        return app

    def authenticate_refresh_token(self, refresh_token: str) -> StoredRefresh | None:
        # Read only: a request refused for its scope leaves the refresh token usable.
        app = self.puhui
        _, digest = consents.code_digest(app, refresh_token, "refresh-token")
        platform = self.request.client.platform
        row = app.consent().claim_refresh_token(digest, platform, app.clock(), take=False)
        if row is None:
            return None
        return StoredRefresh(str(row["grant_id"]), str(row["scopes"]), digest, platform)

    def authenticate_user(self, refresh_token: StoredRefresh) -> Grant:
        found = consents.find(self.puhui, refresh_token.grant_id)
        if found is None or found.state(self.puhui.clock()) is not consent.State.ACTIVE:
            raise InvalidGrantError("the grant was revoked or has expired")
        return found

    def revoke_old_credential(self, refresh_token: StoredRefresh) -> None:
        """Take the refresh token for good; of two requests with it at once, the second is
        refused (the tokens made for it are never handed out)."""
        app = self.puhui
        taken = app.consent().claim_refresh_token(
            refresh_token.digest, refresh_token.platform, app.clock()
        )
        if taken is None:
            raise InvalidGrantError("the refresh token was used already")


class Server(_AuthorizationServer):  # type: ignore[misc]
    """Authlib's authorization server on puhui's storage and tokens."""

    def __init__(self, app: App) -> None:
        super().__init__(scopes_supported=list(consent.SCOPES))
        self.app = app
        self.register_grant(CodeGrant, [S256Required(required=True)])
        self.register_grant(RefreshGrant)
        self.register_token_generator("default", self._token)

    def query_client(self, client_id: str) -> Client | None:
        found = self.app.consent().redirect_uris(client_id or "")
        return None if found is None else Client(client_id, found)

    def save_token(self, token: dict[str, Any], request: Any) -> None:
        """Keep the refresh token by its digest (an access token is verified by its
        signature and its grant)."""
        refresh = token.get("refresh_token")
        grant: Grant = request.user
        if not refresh:
            return
        version, digest = consents.code_digest(self.app, refresh, "refresh-token")
        self.app.consent().add_refresh_token(
            {
                "token_digest": digest,
                "key_version": version,
                "platform": grant.platform,
                "grant_id": grant.id,
                "scopes": token["scope"],
                "created_at": self.app.clock(),
                "expires_at": grant.expires_at,
            }
        )

    def _token(self, grant_type: str, client: Client, user: Grant | None = None,
               scope: str | None = None, expires_in: int | None = None,
               include_refresh_token: bool = True) -> dict[str, Any]:  # fmt: skip
        assert user is not None
        held = frozenset(Scope(s) for s in (scope or "").split() if s in consent.SCOPES)
        issued = citizens.issue_access_token(self.app, user, held & user.scopes)
        answer = {
            "token_type": "Bearer",
            "access_token": issued.token,
            "expires_in": max(0, int((issued.expires_at - self.app.clock()).total_seconds())),
            "scope": consent.scope_text(held & user.scopes),
            "grant_id": user.id,
        }
        if include_refresh_token:
            answer["refresh_token"] = secrets.token_urlsafe(32)
        return answer

    def create_oauth2_request(self, request: Any) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return _Request(request)

    def create_json_request(self, request: HttpRequest) -> JsonRequest:
        json_request = JsonRequest(request.method, request.url, dict(request.headers))
        json_request.payload = _JsonPayload({k: v[0] for k, v in request.form.items() if v})
        return json_request

    def handle_response(self, status: int, body: Any, headers: Any) -> Answer:
        text = json.dumps(body) if isinstance(body, dict) else str(body or "")
        return status, text, [(str(k), str(v)) for k, v in headers]

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No one listens for Authlib's signals here."""

    def get_error_uri(self, request: Any, error: Any) -> None:
        return None
