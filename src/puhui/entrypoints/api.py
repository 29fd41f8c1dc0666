"""The HTTP API: member platforms submit records and read their receipts.

Every route calls the same service functions as the command line. Platform routes require a
signed request (`puhui.domain.signing`); a platform sees only its own records. Errors are
problem details (RFC 9457) carrying a stable `code`; a client's fault is always a 4xx.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import fastapi_offline
from fastapi import Depends, FastAPI, Query, Request, Response
from fastapi import Path as Path_
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, JsonValue
from starlette.exceptions import HTTPException as StarletteHTTPException

from puhui.bootstrap import App
from puhui.domain import signing
from puhui.domain.errors import (
    AlreadyExistsError,
    AuthenticationError,
    ConfigurationError,
    InputError,
    NotFoundError,
    PuhuiError,
    RefusedError,
)
from puhui.domain.methodology import Cap, Methodology
from puhui.entrypoints import api_wallet, dashboard, observability, settler
from puhui.entrypoints.http import PROBLEM, Forbidden, Problem
from puhui.entrypoints.http import citizen as _citizen
from puhui.entrypoints.http import platform as _platform
from puhui.entrypoints.http import problem_doc as _problem_doc
from puhui.entrypoints.http import require as _require
from puhui.entrypoints.http import signed as _signed
from puhui.entrypoints.http import staff as _staff
from puhui.service import admin, citizens, credentials, oversight, queries, submissions, wallet

log = logging.getLogger("puhui.api")

MAX_BATCH = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_PAGE = 1_000
# A caller's own request id is kept (and logged) only if it is this tame.
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

EXAMPLE_RECORD: dict[str, JsonValue] = {
    "platform": "amap",
    "record_id": "AMAP-2026-10-000001",
    "subject": "+86 138 0013 8000",
    "scene": "bus",
    "region": "110000",
    "start": "2026-10-01T08:00:00+08:00",
    "end": "2026-10-01T08:20:00+08:00",
    "distance_km": 5,
}


Window = Annotated[
    date | None, Query(description="Behaviours that started on or after this day (UTC+8).")
]
WindowEnd = Annotated[
    date | None, Query(description="Behaviours that started before this day (UTC+8).")
]


class Submission(BaseModel):
    """Activity records of the signing platform (activity-record v1), settled in order.

    Each record is checked on its own: a record that breaks the contract gets a rejected
    receipt with its reasons and the others go on.
    """

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"records": [EXAMPLE_RECORD]}]}, extra="forbid"
    )

    records: list[JsonValue] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        description="Activity records (JSON objects with the fields of activity-record v1). "
        "An item that is not an object is answered with a `malformed_row` receipt.",
    )


class Receipt(BaseModel):
    """What became of one submitted record (activity-record v1, "Receipt")."""

    platform: str
    record_id: str | None = Field(description="Null when the record carried none.")
    status: Literal["credited", "duplicate", "rejected"]
    reason: str = Field(description="Reason codes, `;`-separated; empty when fully credited.")
    reduction_g: int = Field(ge=0, description="Grams CO2e credited to the citizen.")
    methodology: str = Field(description="id@version of the methodology, empty if rejected.")
    detail: str = ""


class SubmissionResult(BaseModel):
    """The receipts of a submission, in the order of its records."""

    batch: int = Field(
        description="Id of the batch this submission was recorded in; submissions that arrive "
        "together are settled together, in one batch."
    )
    credited_g: int = Field(description="Grams newly credited by this submission.")
    receipts: list[Receipt]


class StoredReceipt(Receipt):
    """A receipt as stored, with its place in receive order."""

    seq: int = Field(description="Receive order; use as `after` to read the next page.")
    received_at: datetime


class ReceiptPage(BaseModel):
    """A page of receipts in receive order."""

    items: list[StoredReceipt]
    next_after: int | None = Field(description="Pass as `after` for the next page; null at end.")


class CitizenTokenRequest(BaseModel):
    """The citizen a member app has logged in, by the identifier it knows them by."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"subject": "+86 138 0013 8000"}]}, extra="forbid"
    )

    subject: str = Field(
        min_length=1,
        max_length=64,
        description="Mainland mobile number or resident ID number; pseudonymised at once, "
        "never stored or logged.",
    )


class CitizenTokenOut(BaseModel):
    """A bearer token for the citizen's own reads, valid 15 minutes."""

    token: str
    token_type: Literal["Bearer"] = "Bearer"  # noqa: S105 (a scheme name, not a secret)
    expires_at: datetime


class BalanceOut(BaseModel):
    """The citizen's balance of verified reductions."""

    balance_g: int = Field(description="Grams CO2e.")


class MovementOut(BaseModel):
    """One movement of the citizen's account: grams CO2e, or points of one programme."""

    entry_id: int
    at: datetime = Field(description="When it was booked.")
    kind: str = Field(
        description="credit, redeem, retire, transfer, reversal, award, award_reversal, expire"
    )
    amount: int = Field(description="In `unit`: added (+) or taken (−).")
    unit: Literal["g", "pt"]
    programme: str | None = Field(description="For points: the programme.")
    platform: str
    scene: str
    methodology: str
    record_id: str | None = Field(description="Only for records of the token's own platform.")
    happened_at: datetime | None = Field(
        description="For a credit, when the behaviour began (`at` is when it was booked)."
    )


class HistoryPage(BaseModel):
    """Movements, newest first."""

    items: list[MovementOut]
    next_before: int | None = Field(description="Pass as `before` for older movements.")


class FactorOut(BaseModel):
    """A factor or parameter used in a calculation, with its provenance."""

    name: str
    value: str
    unit: str
    evidence: str = Field(description="FOUND, DERIVED or ESTIMATE.")
    source: str
    region_asked: str | None = None
    region_used: str | None = None
    region_level: str | None = None
    derivation: str | None = None


class CreditExplanation(BaseModel):
    """How one credit was computed: methodology, formulas, factors and their sources."""

    entry_id: int
    platform: str
    record_id: str | None = Field(description="Only for records of the token's own platform.")
    scene: str
    region: str
    material: str
    start: datetime | None
    amount: str | None = Field(description="Activity amount in `unit`, exact decimal.")
    unit: str
    methodology: str
    baseline_formula: str
    project_formula: str
    reduction_per_unit_g: str
    factors: list[FactorOut]
    reduction_g: int


class PlatformOut(BaseModel):
    """A member platform and what it submitted."""

    code: str
    name: str
    registered_at: datetime
    credited: int
    duplicate: int
    rejected: int
    credited_g: int


class CapOut(BaseModel):
    """A limit per citizen, scene and period."""

    period: Literal["day", "month"]
    max_g: int | None
    max_count: int | None


class SceneRuleOut(BaseModel):
    """How a methodology quantifies one scene: ER = BE − PE per unit."""

    scene: str
    unit: str
    baseline_formula: str
    project_formula: str
    caps: list[CapOut]


class ParameterOut(BaseModel):
    """A constant of a methodology, with its provenance."""

    name: str
    value: str
    unit: str
    evidence: str
    source: str


class MethodologyOut(BaseModel):
    """One version of a methodology."""

    id: str
    version: str
    ref: str = Field(description="id@version, as receipts show it.")
    title: str
    title_zh: str
    issuer: str
    status: str
    effective_from: date
    effective_to: date | None
    jurisdiction: list[str]
    official_code: str
    description: str
    scenes: list[SceneRuleOut]
    parameters: list[ParameterOut]
    references: list[str]


class ReductionOut(BaseModel):
    """Credited reductions of one region, scene, platform or day."""

    key: str
    credited_g: int
    records: int
    participants: int = Field(description="Distinct citizens.")


class OutcomeOut(BaseModel):
    """Records of one platform with one status and reason."""

    platform: str
    status: str
    reason: str
    records: int


class PairOut(BaseModel):
    """Duplicates `platform` reported of behaviours first received from `first_from`."""

    platform: str
    first_from: str
    reason: str
    records: int


class Health(BaseModel):
    """Liveness or readiness."""

    status: Literal["ok"]


class BodyTooLarge(StarletteHTTPException):
    """A request body over MAX_BODY_BYTES, found as it was read (a chunked body declares no
    length): answered 413 as a problem document."""

    def __init__(self) -> None:
        super().__init__(413, f"request bodies are limited to {MAX_BODY_BYTES} bytes")


# A Content-Length header: ASCII digits (`str.isdigit` would take `²`).
CONTENT_LENGTH = re.compile(r"^[0-9]{1,19}$")


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
            response = _problem(
                Request(scope),
                413,
                "body_too_large",
                f"request bodies are limited to {MAX_BODY_BYTES} bytes",
            )
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
                    raise BodyTooLarge
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


def create_app(app: App) -> FastAPI:
    """The ASGI application over an initialised puhui `App`."""
    # Under `puhui serve`, one settlement process settles every worker's submissions; without
    # it (tests, an ASGI server started by hand) this process settles its own.
    settlement: submissions.GroupCommit | settler.RemoteSettlement
    if os.environ.get(settler.ADDRESS_ENV):
        settlement = settler.RemoteSettlement(
            os.environ[settler.ADDRESS_ENV], bytes.fromhex(os.environ[settler.KEY_ENV])
        )
    else:
        settlement = submissions.GroupCommit(app, observe=observability.observe_group)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
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
            "docs/api.md."
        ),
        responses={
            400: _problem_doc(),
            413: _problem_doc(),
            422: _problem_doc(),
        },
    )
    api.state.puhui = app
    _install_errors(api)
    _install_docs(api)

    api.add_middleware(RequestLog)

    platform_responses: dict[int | str, dict[str, Any]] = {
        401: _problem_doc("Not signed by an active key of a platform, stale, or replayed.")
    }

    @api.post(
        "/v1/records",
        response_model=SubmissionResult,
        tags=["platform"],
        responses=platform_responses,
        summary="Submit records and get their receipts",
    )
    async def submit(
        body: Submission, signed: Annotated[credentials.Signed, Depends(_signed)]
    ) -> SubmissionResult:
        """Check, quantify, deduplicate and credit up to 10 000 records in one transaction.

        A re-sent submission returns the same receipts and credits nothing twice. A record whose
        `platform` is not the signing platform is rejected (`platform_mismatch`).
        """
        submitted = await settlement.settle(signed.platform, body.records, signed)
        return SubmissionResult(
            batch=submitted.batch,
            credited_g=submitted.credited_g,
            receipts=_receipts(submitted.receipts),
        )

    @api.get(
        "/v1/receipts/{record_id}",
        response_model=StoredReceipt,
        tags=["platform"],
        responses={**platform_responses, 404: _problem_doc()},
        summary="The receipt of one of your records",
    )
    def one_receipt(record_id: str, platform: Annotated[str, Depends(_platform)]) -> StoredReceipt:
        """Only the signing platform's own records are found."""
        return _stored(queries.receipt(app, platform, record_id))

    @api.get(
        "/v1/receipts",
        response_model=ReceiptPage,
        tags=["platform"],
        responses=platform_responses,
        summary="Your receipts in receive order, a page at a time",
    )
    def list_receipts(
        platform: Annotated[str, Depends(_platform)],
        after: Annotated[
            int, Query(ge=0, le=2**63 - 1, description="Receipts after this `seq`.")
        ] = 0,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        received_from: Annotated[
            datetime | None, Query(description="Received at or after (RFC 3339 with offset).")
        ] = None,
        received_to: Annotated[
            datetime | None, Query(description="Received before (RFC 3339 with offset).")
        ] = None,
    ) -> ReceiptPage:
        """Receipts of the signing platform's records, optionally within a receive window."""
        items = queries.receipts_page(
            app,
            platform,
            after=after,
            limit=limit,
            received_from=_utc(received_from),
            received_to=_utc(received_to),
        )
        return ReceiptPage(
            items=[_stored(r) for r in items],
            next_after=items[-1].seq if len(items) == limit else None,
        )

    @api.post(
        "/v1/citizen-tokens",
        response_model=CitizenTokenOut,
        tags=["platform"],
        responses=platform_responses,
        summary="A short-lived token for one of your logged-in users",
    )
    def citizen_token(
        body: CitizenTokenRequest, platform: Annotated[str, Depends(_platform)]
    ) -> CitizenTokenOut:
        """After its own login, a member app obtains a token its user's app then sends as
        `Authorization: Bearer <token>` to read that citizen's account."""
        issued = citizens.issue_token(app, platform, body.subject)
        return CitizenTokenOut(token=issued.token, expires_at=issued.expires_at)

    citizen_responses: dict[int | str, dict[str, Any]] = {
        401: _problem_doc("No valid citizen token.")
    }

    @api.get(
        "/v1/me",
        response_model=BalanceOut,
        tags=["citizen"],
        responses=citizen_responses,
        summary="Your balance",
    )
    def my_balance(citizen: Annotated[citizens.Citizen, Depends(_citizen)]) -> BalanceOut:
        """Verified reductions credited to you, over every member platform."""
        return BalanceOut(balance_g=wallet.holdings(app, citizen.pseudonym).balance_g)

    @api.get(
        "/v1/me/history",
        response_model=HistoryPage,
        tags=["citizen"],
        responses=citizen_responses,
        summary="Your account's movements, newest first",
    )
    def my_history(
        citizen: Annotated[citizens.Citizen, Depends(_citizen)],
        before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    ) -> HistoryPage:
        """Each credit with its platform, scene and methodology; open one with
        `/v1/me/credits/{entry_id}` to see how it was computed."""
        lines = citizens.history(app, citizen, before, limit)
        return HistoryPage(
            items=[MovementOut(**dataclasses.asdict(m)) for m in lines],
            next_before=lines[-1].entry_id if len(lines) == limit else None,
        )

    @api.get(
        "/v1/me/credits/{entry_id}",
        response_model=CreditExplanation,
        tags=["citizen"],
        responses={**citizen_responses, 404: _problem_doc()},
        summary="How one of your credits was computed",
    )
    def my_credit(
        entry_id: Annotated[int, Path_(ge=1, le=2**63 - 1)],
        citizen: Annotated[citizens.Citizen, Depends(_citizen)],
    ) -> CreditExplanation:
        """Methodology and version, formulas, every factor with its value, evidence, source and
        the region it was found for, and the rounding to whole grams."""
        return _explanation(entry_id, citizen, citizens.explain_credit(app, citizen, entry_id))

    @api.get(
        "/v1/methodologies",
        response_model=list[MethodologyOut],
        tags=["methodologies"],
        summary="Every methodology version puhui applies",
    )
    def methodologies() -> list[MethodologyOut]:
        """Public: formulas, caps, parameters with sources, jurisdiction and effective dates."""
        return [_methodology(m) for m in app.catalogue.methodologies]

    @api.get(
        "/v1/methodologies/{methodology_id}",
        response_model=list[MethodologyOut],
        tags=["methodologies"],
        responses={404: _problem_doc()},
        summary="Every version of one methodology",
    )
    def methodology_versions(methodology_id: str) -> list[MethodologyOut]:
        """The versions of one methodology, oldest first."""
        found = [_methodology(m) for m in app.catalogue.methodologies if m.id == methodology_id]
        if not found:
            raise NotFoundError(f"no methodology {methodology_id!r}")
        return found

    staff_responses: dict[int | str, dict[str, Any]] = {
        401: _problem_doc("No valid operator or regulator token."),
        403: _problem_doc("The token's role may not read this."),
    }

    @api.get(
        "/v1/oversight/platforms",
        response_model=list[PlatformOut],
        tags=["oversight"],
        responses=staff_responses,
        summary="Member platforms and what each submitted (operators)",
    )
    def oversight_platforms(
        staff: Annotated[oversight.Staff, Depends(_staff)],
    ) -> list[PlatformOut]:
        """Stored records by status and grams credited, per platform."""
        _require(staff, oversight.Role.OPERATOR)
        return [
            PlatformOut(
                code=p.code,
                name=p.name,
                registered_at=queries.aware(p.created_at),
                credited=p.credited,
                duplicate=p.duplicate,
                rejected=p.rejected,
                credited_g=p.credited_g,
            )
            for p in admin.list_platforms(app)
        ]

    @api.get(
        "/v1/oversight/reductions",
        response_model=list[ReductionOut],
        tags=["oversight"],
        responses=staff_responses,
        summary="Reductions, records and participants by region, scene, platform or day",
    )
    def oversight_reductions(
        staff: Annotated[oversight.Staff, Depends(_staff)],
        by: oversight.Dimension,
        day_from: Window = None,
        day_to: WindowEnd = None,
    ) -> list[ReductionOut]:
        """Credited grams, credited records and distinct citizens."""
        rows = oversight.reductions(app, by, day_from, day_to)
        return [ReductionOut(**dataclasses.asdict(r)) for r in rows]

    @api.get(
        "/v1/oversight/outcomes",
        response_model=list[OutcomeOut],
        tags=["oversight"],
        responses=staff_responses,
        summary="Records by platform, status and reason",
    )
    def oversight_outcomes(
        staff: Annotated[oversight.Staff, Depends(_staff)],
        day_from: Window = None,
        day_to: WindowEnd = None,
    ) -> list[OutcomeOut]:
        """Rejections and duplicates by reason code, per platform."""
        return [
            OutcomeOut(**dataclasses.asdict(r)) for r in oversight.outcomes(app, day_from, day_to)
        ]

    @api.get(
        "/v1/oversight/duplicate-pairs",
        response_model=list[PairOut],
        tags=["oversight"],
        responses=staff_responses,
        summary="Who reports the same behaviours as whom",
    )
    def oversight_pairs(
        staff: Annotated[oversight.Staff, Depends(_staff)],
        day_from: Window = None,
        day_to: WindowEnd = None,
    ) -> list[PairOut]:
        """Duplicates by reporting platform and the platform received first, with the reason."""
        rows = oversight.duplicate_pairs(app, day_from, day_to)
        return [PairOut(**dataclasses.asdict(r)) for r in rows]

    @api.get("/healthz", response_model=Health, tags=["operations"], summary="Liveness")
    async def healthz() -> Health:
        """The process answers."""
        return Health(status="ok")

    @api.get(
        "/readyz",
        response_model=Health,
        tags=["operations"],
        summary="Readiness",
        responses={503: _problem_doc()},
    )
    def readyz() -> Health:
        """The database is reachable, initialised, at the latest schema, with this key."""
        admin.check_ready(app)
        return Health(status="ok")

    @api.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    def metrics() -> Response:
        """Requests by route and status, latencies, records by receipt status."""
        payload, content_type = observability.metrics_payload()
        return Response(payload, media_type=content_type)

    api_wallet.install(api, app)
    dashboard.install(api, app)
    _document_security(api)
    return api


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


def _methodology(m: Methodology) -> MethodologyOut:
    return MethodologyOut(
        id=m.id,
        version=m.version,
        ref=m.ref,
        title=m.title,
        title_zh=m.title_zh,
        issuer=m.issuer,
        status=str(m.status),
        effective_from=m.effective_from,
        effective_to=m.effective_to,
        jurisdiction=list(m.jurisdiction),
        official_code=m.official_code,
        description=m.description,
        scenes=[
            SceneRuleOut(
                scene=r.scene,
                unit=r.unit,
                baseline_formula=r.baseline.source,
                project_formula=r.project.source,
                caps=[_cap(c) for c in r.caps],
            )
            for r in m.scenes.values()
        ],
        parameters=[
            ParameterOut(
                name=p.name,
                value=str(p.value),
                unit=p.unit,
                evidence=str(p.evidence),
                source=p.source,
            )
            for p in m.parameters.values()
        ],
        references=list(m.references),
    )


def _cap(c: Cap) -> CapOut:
    period: Literal["day", "month"] = "day" if c.period == "day" else "month"
    return CapOut(period=period, max_g=c.max_g, max_count=c.max_count)


def _explanation(
    entry_id: int, citizen: citizens.Citizen, e: queries.Explanation
) -> CreditExplanation:
    trace = e.trace or {}
    return CreditExplanation(
        entry_id=entry_id,
        platform=e.platform,
        record_id=e.record_id if e.platform == citizen.platform else None,
        scene=e.scene,
        region=e.region,
        material=e.material,
        start=e.start,
        amount=None if e.amount is None else str(e.amount),
        unit=e.unit,
        methodology=str(trace.get("methodology", "")),
        baseline_formula=str(trace.get("baseline_formula", "")),
        project_formula=str(trace.get("project_formula", "")),
        reduction_per_unit_g=str(trace.get("reduction_g", "")),
        factors=[FactorOut(**n) for n in trace.get("names", [])],
        reduction_g=e.reduction_g,
    )


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    try:
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    except OverflowError:
        raise InputError(f"{moment.isoformat()} is out of range") from None


def _receipts(rows: Sequence[submissions.Receipt]) -> list[Receipt]:
    return [Receipt(**r._asdict()) for r in rows]


def _stored(r: queries.StoredReceipt) -> StoredReceipt:
    return StoredReceipt(
        seq=r.seq,
        platform=r.platform,
        record_id=r.record_id,
        status=r.status,  # type: ignore[arg-type]  # the column's check constraint
        reason=r.reason,
        reduction_g=r.reduction_g,
        methodology=r.methodology,
        detail=r.detail,
        received_at=r.received_at,
    )


# Errors ---------------------------------------------------------------------------------------

TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Payload too large",
    422: "Unprocessable content",
    500: "Internal server error",
    503: "Service unavailable",
}


def _problem(request: Request, status: int, code: str, detail: str) -> JSONResponse:
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


def _install_errors(api: FastAPI) -> None:
    @api.exception_handler(AuthenticationError)
    async def refused(request: Request, exc: AuthenticationError) -> JSONResponse:
        return _problem(request, 401, exc.code, str(exc))

    @api.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> JSONResponse:
        return _problem(request, 403, "forbidden", str(exc))

    @api.exception_handler(NotFoundError)
    async def not_found(request: Request, exc: NotFoundError) -> JSONResponse:
        return _problem(request, 404, "not_found", str(exc))

    @api.exception_handler(AlreadyExistsError)
    async def exists(request: Request, exc: AlreadyExistsError) -> JSONResponse:
        return _problem(request, 409, "already_exists", str(exc))

    @api.exception_handler(RefusedError)
    async def refused_operation(request: Request, exc: RefusedError) -> JSONResponse:
        return _problem(request, 409, exc.code, str(exc))

    @api.exception_handler(InputError)
    async def bad_input(request: Request, exc: InputError) -> JSONResponse:
        return _problem(request, 422, "invalid_input", str(exc))

    @api.exception_handler(ConfigurationError)
    async def not_ready(request: Request, exc: ConfigurationError) -> JSONResponse:
        return _problem(request, 503, "not_ready", str(exc))

    @api.exception_handler(PuhuiError)
    async def other(request: Request, exc: PuhuiError) -> JSONResponse:
        log.error("refused", extra={"request_id": getattr(request.state, "request_id", None)})
        return _problem(request, 500, "internal_error", type(exc).__name__)

    @api.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unexpected error",
            exc_info=exc,
            extra={"request_id": getattr(request.state, "request_id", None)},
        )
        response = _problem(request, 500, "internal_error", "an unexpected error; it was logged")
        # Answered outside `RequestLog` (by Starlette's outermost middleware): its header too.
        request_id = getattr(request.state, "request_id", None)
        if request_id is not None:
            response.headers["X-Request-Id"] = request_id
        return response

    @api.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = [
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()[:20]
        ]
        return _problem(request, 422, "invalid_request", "; ".join(parts))

    @api.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}.get(
            exc.status_code, "http_error"
        )
        return _problem(request, exc.status_code, code, str(exc.detail))


# Routes anyone may call.
PUBLIC = (
    "/v1/methodologies",
    "/v1/rewards",
    "/v1/programmes",
    "/v1/footprints",
    "/v1/certificates",
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
                "description": description if header == signing.HEADER_SIGNATURE else header,
            }
        signed: list[dict[str, list[str]]] = [{h: [] for h in schemes}]
        schemes["CitizenToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from POST /v1/citizen-tokens, valid 15 minutes.",
        }
        schemes["StaffToken"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "An operator's or regulator's token from `puhui staff add`.",
        }
        for path, operations in schema.get("paths", {}).items():
            if path.startswith("/v1/"):
                for method, operation in operations.items():
                    citizen = path == "/v1/me" or path.startswith("/v1/me/")
                    if citizen:
                        operation["security"] = [{"CitizenToken": []}]
                    elif path.startswith("/v1/oversight/"):
                        operation["security"] = [{"StaffToken": []}]
                    elif (method, path) != ("post", "/v1/footprints") and (
                        method != "get" or not path.startswith(PUBLIC)
                    ):
                        operation["security"] = signed
        api.openapi_schema = schema
        return schema

    api.openapi = openapi  # type: ignore[method-assign]
