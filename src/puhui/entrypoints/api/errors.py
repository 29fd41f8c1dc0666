"""How the HTTP API answers an error: one table from exception class to status and problem
code, and the handlers that read it. Every answer is a problem document (RFC 9457) with a
stable `code`; a client's fault is always a 4xx, and a 401 names the scheme to sign with.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from puhui.domain.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigurationError,
    ConsentError,
    InputError,
    NotFoundError,
    PuhuiError,
    RateLimitedError,
    RefusedError,
)
from puhui.entrypoints.http import PROBLEM, Forbidden, Problem

log = logging.getLogger("puhui.api")

# What each error is answered with: (status, problem code). An error takes the row of the first
# class of its MRO found here (an `InsufficientBalance` the row of `RefusedError`). A code of
# None is the error's own `code`; a status of None the HTTP exception's own, with its code from
# HTTP_CODES.
ERRORS: dict[type[Exception], tuple[int | None, str | None]] = {
    AuthenticationError: (401, None),  # bad_signature, stale, replayed, missing_token, …
    Forbidden: (403, "forbidden"),
    ConsentError: (403, None),  # consent_required, grant_revoked, grant_expired, …
    NotFoundError: (404, "not_found"),
    AlreadyExistsError: (409, "already_exists"),
    RefusedError: (409, None),  # insufficient_balance, out_of_stock, limit_reached, …
    InputError: (422, "invalid_input"),
    RequestValidationError: (422, "invalid_request"),
    RateLimitedError: (429, "too_many_requests"),
    ConfigurationError: (503, "not_ready"),
    PuhuiError: (500, "internal_error"),  # any other: the server's fault
    StarletteHTTPException: (None, None),  # Starlette's own: no route, method, body size
    Exception: (500, "internal_error"),  # unexpected
}

# Starlette's own errors, by status: no such route, a method the route does not take, a body
# over the limit (`BodyTooLarge`).
HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}


class BodyTooLarge(StarletteHTTPException):
    """A request body over the limit, found as it was read (a chunked body declares no
    length): answered 413 as a problem document."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request bodies are limited to {limit} bytes")


def classify(exc: Exception) -> tuple[int, str]:
    """The status and problem code of an error, by ERRORS."""
    status, code = next(ERRORS[kind] for kind in type(exc).__mro__ if kind in ERRORS)
    if isinstance(exc, StarletteHTTPException):
        return exc.status_code, HTTP_CODES.get(exc.status_code, "http_error")
    assert status is not None, "only HTTP exceptions answer with their own status"
    return status, code if code is not None else str(getattr(exc, "code", "internal_error"))


def render(request: Request, exc: Exception) -> JSONResponse:
    """The problem document answering an error. The detail of a server error names no more
    than the error's class: its message may carry what a client must not see."""
    status, code = classify(exc)
    if isinstance(exc, RequestValidationError):
        detail = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()[:20]
        )
    elif isinstance(exc, StarletteHTTPException):
        detail = str(exc.detail)
    elif isinstance(exc, PuhuiError) and status == 500:
        detail = type(exc).__name__
    elif status == 500:
        detail = "an unexpected error; it was logged"
    else:
        detail = str(exc)
    return problem(request, status, code, detail)


def problem(request: Request, status: int, code: str, detail: str) -> JSONResponse:
    """A problem document; a 401 names the scheme to authenticate with."""
    body = Problem(
        type=f"urn:puhui:problem:{code}",
        title=TITLES.get(status, "Error"),
        status=status,
        detail=detail,
        code=code,
        instance=request.url.path,
        request_id=getattr(request.state, "request_id", None),
    )
    headers = {"WWW-Authenticate": "PuhuiSignature"} if status == 401 else None
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM, headers=headers
    )


async def answer(request: Request, exc: Exception) -> JSONResponse:
    """The handler of every error of the table but the unexpected ones."""
    if isinstance(exc, PuhuiError) and classify(exc)[0] == 500:
        log.error("refused", extra={"request_id": getattr(request.state, "request_id", None)})
    return render(request, exc)


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    """The handler of an error no row but `Exception` matches: logged with its traceback."""
    request_id = getattr(request.state, "request_id", None)
    log.error("unexpected error", exc_info=exc, extra={"request_id": request_id})
    response = render(request, exc)
    # Answered outside `RequestLog` (by Starlette's outermost middleware): its header too.
    if request_id is not None:
        response.headers["X-Request-Id"] = request_id
    return response


def install(api: FastAPI) -> None:
    """Answer every error of the table with its problem document."""
    for kind in ERRORS:
        api.add_exception_handler(kind, unexpected if kind is Exception else answer)
