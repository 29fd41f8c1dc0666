"""What every HTTP route shares: the problem-details model and who is calling (a signed
member platform, a signed company, a citizen's bearer token and the scope its grant holds, an
operator's or regulator's bearer token)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from puhui.bootstrap import App
from puhui.domain.consent import Scope
from puhui.domain.errors import AuthenticationError
from puhui.service import citizens, credentials, oversight

PROBLEM = "application/problem+json"

T = TypeVar("T")


class Problem(BaseModel):
    """An error, as RFC 9457 problem details with puhui's stable code."""

    type: str = Field(examples=["urn:puhui:problem:bad_signature"])
    title: str
    status: int
    detail: str
    code: str = Field(description="Stable reason code, also the last part of `type`.")
    instance: str | None = None
    request_id: str | None = None


def problem_doc(description: str = "Problem details (RFC 9457).") -> dict[str, Any]:
    """An error response in the OpenAPI document: a `Problem` as application/problem+json."""
    schema = {"$ref": "#/components/schemas/Problem"}
    return {"model": Problem, "description": description, "content": {PROBLEM: {"schema": schema}}}


async def platform(request: Request) -> str:
    """The signing platform of a request (a dependency of every platform route)."""
    return await _signature(request, credentials.authenticate)


async def company(request: Request) -> str:
    """The unified social credit code of the company signing a request with its own key (a
    dependency of every company route; a platform's key is refused)."""
    return await _signature(request, credentials.authenticate_company)


async def signed(request: Request) -> credentials.Signed:
    """A request signed by an active key of a platform, its nonce left for the caller to claim
    (the records route claims it in the transaction that settles the records). Checked on the
    loop when the key is one the process remembers (a few HMACs), off it otherwise."""
    body = await request.body()
    path = _signed_path(request)
    app = request.app.state.puhui
    known = credentials.verify_remembered(app, request.method, path, request.headers, body)
    if known is not None:
        return known
    return await run_in_threadpool(
        credentials.verify_signature, app, request.method, path, request.headers, body
    )


async def _signature(
    request: Request, check: Callable[[App, str, str, Mapping[str, str], bytes], T]
) -> T:
    """Check a request's signature (method, path with query, headers, body) off the loop."""
    body = await request.body()
    return await run_in_threadpool(
        check, request.app.state.puhui, request.method, _signed_path(request), request.headers, body
    )


def _signed_path(request: Request) -> str:
    """What a signature covers of a request's address: its path and query, exactly as sent
    (`%20` stays `%20`: a record id with a space or in Chinese is signed as the client wrote
    it, not as the server decodes it)."""
    raw: bytes = request.scope.get("raw_path") or request.url.path.encode()
    query: bytes = request.scope.get("query_string", b"")
    return raw.decode("latin-1") + (f"?{query.decode('latin-1')}" if query else "")


async def citizen(request: Request) -> citizens.Citizen:
    """The citizen a bearer token speaks for (a dependency of every citizen route)."""
    return citizens.verify_token(request.app.state.puhui, bearer(request, "citizen token"))


def citizen_with(scope: Scope) -> Callable[[Request], Awaitable[citizens.Citizen]]:
    """A dependency: the citizen of a bearer token whose grant, as it is at this call, holds
    `scope` (the citizen's own session holds every scope)."""

    async def allowed(request: Request) -> citizens.Citizen:
        who = await citizen(request)
        if not who.own_session:
            await run_in_threadpool(citizens.authorize, request.app.state.puhui, who, scope)
        return who

    return allowed


async def own_citizen(request: Request) -> citizens.Citizen:
    """The citizen themself, signed in to puhui: a member platform's token is forbidden."""
    who = await citizen(request)
    if not who.own_session:
        raise Forbidden("only the citizen, signed in to puhui, manages their grants")
    return who


async def staff(request: Request) -> oversight.Staff:
    """The operator or regulator a bearer token speaks for."""
    token = bearer(request, "staff token")
    return await run_in_threadpool(oversight.verify_staff_token, request.app.state.puhui, token)


def bearer(request: Request, kind: str) -> str:
    """The token of an `Authorization: Bearer` header."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("missing_token", f"send Authorization: Bearer <{kind}>")
    return token.strip()


def require(staff: oversight.Staff, role: oversight.Role) -> None:
    if staff.role is not role:
        raise Forbidden(f"a {staff.role} token may not read this; it needs the {role} role")


class Forbidden(Exception):
    """An authenticated caller whose role does not allow the request."""
