"""The web dashboard: public figures of the common mechanism, served by the API's application.

Pages are rendered on the server (Jinja2) with their charts as inline SVG, so they need no
script, font or stylesheet from anywhere else and work offline. Every table can be downloaded
as CSV or Excel. Chinese by default, English with `?lang=en` (remembered in a cookie).
"""

from __future__ import annotations

import csv
import dataclasses
import hmac
import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timezone
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Query, Request, Response
from fastapi import Path as Path_
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from openpyxl import Workbook
from starlette.concurrency import run_in_threadpool

from puhui.bootstrap import App
from puhui.domain import china_time, consent, disclosure
from puhui.domain.errors import AuthenticationError, NotFoundError
from puhui.domain.review import Decision
from puhui.entrypoints import consent_pages, i18n, registry_pages
from puhui.service import (
    admin,
    citizens,
    federation,
    oversight,
    publication,
    queries,
    restatement,
    review_queue,
    wallet,
)
from puhui.service import consent as consents

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# Held records on one page of the review queue.
PAGE = 100
CHINA = timezone(china_time.OFFSET, "CST")
# Session cookies holding the token a user signed in with (HttpOnly, SameSite=Strict).
COOKIES = {"staff": "puhui_staff", "citizen": "puhui_citizen"}
# Where a decision on the review queue's pages may send the operator back to.
REVIEW_PAGE = re.compile(r"^/dashboard/review(/[0-9]{1,19})?$")
# Where a staff member lands on signing in.
STAFF_HOME = {
    oversight.Role.OPERATOR: "/dashboard/operator",
    oversight.Role.REGULATOR: "/dashboard/regulator",
}


@dataclass
class DataTable:
    """One table of the dashboard, with the column its chart draws."""

    name: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    chart_column: int | None = None
    bars: list[tuple[str, float, str]] = field(default_factory=list)

    def chart(self) -> None:
        """Bars for the chart column: label, length in % of the largest value, value (a row
        whose value is suppressed has no bar)."""
        if self.chart_column is None:
            return
        drawn = [r for r in self.rows if isinstance(r[self.chart_column], int | float | Decimal)]
        if not drawn:
            return
        values = [float(r[self.chart_column]) for r in drawn]
        top = max(values) or 1.0
        self.bars = [
            (str(r[0]), 100 * v / top, _number(r[self.chart_column]))
            for r, v in zip(drawn, values, strict=True)
        ]


def tables(app: App, lang: str, received: int | None, full: bool = False) -> dict[str, DataTable]:
    """Every table of the public dashboard, in one language (`received`: every record
    received, against which duplicates and rejections are counted; None when suppressed).

    Public tables show a suppressed figure as `<k` (`service.publication`); with `full`, for
    regulators and operators, every figure is shown, with reductions by region and the
    duplicates across platforms besides."""
    t = i18n.TEXT[lang]
    scenes = i18n.SCENES[lang]
    regions = app.catalogue.regions
    kg = t["reduction_kg"]
    hidden = disclosure.label(publication.min_cell(app))

    def reductions(name: str, by: oversight.Dimension, label: Callable[[str], str]) -> DataTable:
        # The public tables' dimensions are those of `publication.Breakdown`.
        if full:
            rows = [
                [label(r.key), kilograms(r.credited_g), r.records, r.participants]
                for r in oversight.reductions(app, by)
            ]
        else:
            rows = [
                [label(r.key), hidden, hidden, hidden]
                if r.credited_g is None or r.records is None or r.participants is None
                else [label(r.key), kilograms(r.credited_g), r.records, r.participants]
                for r in publication.reductions(app, publication.Breakdown(by.value))
            ]
        table = DataTable(
            name, t[name], [t["key"], kg, t["records"], t["participants"]], rows, chart_column=1
        )
        table.chart()
        return table

    def province(code: str) -> str:
        if lang == "en":
            return i18n.PROVINCES_EN.get(code, code)
        region = regions.get(code)
        return region.name if region else code

    def region(code: str) -> str:
        found = regions.get(code)
        return f"{code} {found.name}" if found else code

    out = {"by_province": reductions("by_province", oversight.Dimension.PROVINCE, province)}
    if full:
        out["by_region"] = reductions("by_region", oversight.Dimension.REGION, region)
    out["by_scene"] = reductions("by_scene", oversight.Dimension.SCENE, lambda s: scenes.get(s, s))
    out["by_platform"] = reductions("by_platform", oversight.Dimension.PLATFORM, str)
    out["by_month"] = reductions("by_month", oversight.Dimension.MONTH, str)
    counted: list[tuple[str, str, int | None]]
    if full:
        summed: dict[tuple[str, str], int] = {}
        for r in oversight.outcomes(app):
            if r.status != "credited":
                summed[(r.status, r.reason)] = summed.get((r.status, r.reason), 0) + r.records
        ordered = sorted(summed.items(), key=lambda kv: (-kv[1], kv[0]))
        counted = [(status, reason, n) for (status, reason), n in ordered]
    else:
        counted = [(o.status, o.reason, o.records) for o in publication.outcomes(app)]
    reasons = i18n.REASONS[lang]
    rows = [
        [f"{t[status]}: {reasons.get(reason, reason)}", hidden, hidden]
        if n is None
        else [
            f"{t[status]}: {reasons.get(reason, reason)}",
            n,
            f"{100 * n / received:.2f} %" if received else "",
        ]
        for status, reason, n in counted
    ]
    outcomes = DataTable(
        "outcomes", t["outcomes"], [t["reason"], t["records"], t["share"]], rows, chart_column=1
    )
    outcomes.chart()
    out["outcomes"] = outcomes
    if full:
        out["duplicates"] = DataTable(
            "duplicates",
            t["duplicates"],
            [t["reported_by"], t["first_from"], t["reason"], t["records"]],
            [
                [p.platform, p.first_from, reasons.get(p.reason, p.reason), p.records]
                for p in oversight.duplicate_pairs(app)
            ],
        )
    today = app.clock().date()
    out["methodologies"] = DataTable(
        "methodologies",
        t["methodologies"],
        [t["methodology"], t["version"], t["issuer"], t["effective_from"], t["scenes"]],
        [
            [
                m.title_zh if lang == "zh-CN" else m.title,
                m.version,
                m.issuer,
                m.effective_from.isoformat(),
                ", ".join(scenes.get(s, s) for s in m.scenes),
            ]
            for m in app.catalogue.methodologies
            if app.catalogue.in_force(m, today)
        ],
    )
    return out


def operator_tables(app: App, lang: str) -> dict[str, DataTable]:
    """The operator's tables: each platform's health, rejections by platform and reason, every
    methodology version, and how each platform's records fare under review (held, corroborated,
    released, rejected on review; flagged when reviewers reject too many)."""
    t = i18n.TEXT[lang]
    reasons = i18n.REASONS[lang]
    health = DataTable(
        "health",
        t["health"],
        [t["platform"], t["submissions"], t["credited"], t["duplicate"], t["rejected"],
         t["credited_share"], t["reduction_kg"]],
        [
            [p.code, total, p.credited, p.duplicate, p.rejected,
             f"{100 * p.credited / total:.1f} %" if total else "", kilograms(p.credited_g)]
            for p in admin.list_platforms(app)
            for total in [p.credited + p.duplicate + p.rejected]
        ],
        chart_column=1,
    )  # fmt: skip
    health.chart()
    rejections = DataTable(
        "rejections",
        t["rejections"],
        [t["platform"], t["reason"], t["records"]],
        [
            [r.platform, reasons.get(r.reason, r.reason), r.records]
            for r in oversight.outcomes(app)
            if r.status == "rejected"
        ],
    )
    versions = DataTable(
        "versions",
        t["versions"],
        [t["methodology"], t["version"], t["status"], t["effective_from"], t["effective_to"]],
        [
            [m.id, m.version, str(m.status), m.effective_from.isoformat(),
             m.effective_to.isoformat() if m.effective_to else ""]
            for m in app.catalogue.methodologies
        ],
    )  # fmt: skip
    review_rates = DataTable(
        "review_rates",
        t["review_rates"],
        [t["platform"], t["records"], t["held_ever"], t["open_now"], t["corroborated"],
         t["released"], t["rejected_on_review"], t["not_corroborated"], t["rejected_share"],
         t["flagged"]],
        [
            [r.platform, r.records, r.held, r.open, r.corroborated, r.released,
             r.rejected_on_review, r.not_corroborated,
             "" if r.rejected_share is None else f"{100 * r.rejected_share:.1f} %",
             t["flagged"] if r.flagged else ""]
            for r in review_queue.rates(app)
        ],
    )  # fmt: skip
    return {
        "health": health,
        "rejections": rejections,
        "versions": versions,
        "review_rates": review_rates,
    }


@dataclass
class Matrix:
    """Duplicates by reporting platform (rows) and the platform first to report (columns)."""

    columns: list[str]
    rows: list[tuple[str, list[int]]]


def duplicate_matrix(app: App) -> Matrix:
    """Who reports the same behaviours as whom."""
    counts: dict[tuple[str, str], int] = {}
    for pair in oversight.duplicate_pairs(app):
        key = (pair.platform, pair.first_from)
        counts[key] = counts.get(key, 0) + pair.records
    reporters = sorted({a for a, _ in counts})
    firsts = sorted({b for _, b in counts})
    return Matrix(firsts, [(a, [counts.get((a, b), 0) for b in firsts]) for a in reporters])


@dataclass(frozen=True)
class CommonFigures:
    """The registry's figures of every node of the common mechanism, as this node last
    received them."""

    at: str
    nodes: list[dict[str, Any]]
    matrix: Matrix
    methodologies: list[dict[str, Any]]


def common_figures(app: App) -> CommonFigures | None:
    """What the registry last said of every node (None before this node joined one and heard
    back)."""
    found = federation.registry_figures(app)
    if found is None:
        return None
    figures, at = found
    units = {u["node"]: u for u in figures.get("units", [])}
    nodes = [
        {
            **n,
            **{
                k: units.get(n["code"], {}).get(k, 0)
                for k in ("issued", "held", "sent", "received")
            },
        }
        for n in figures.get("nodes", [])
    ]
    counts = {
        (d["node"], d["of_node"]): int(d["claims"]) for d in figures.get("duplicates_between", [])
    }
    rows = sorted({a for a, _ in counts})
    columns = sorted({b for _, b in counts})
    matrix = Matrix(columns, [(a, [counts.get((a, b), 0) for b in columns]) for a in rows])
    return CommonFigures(
        f"{at:%Y-%m-%d %H:%M} UTC", nodes, matrix, list(figures.get("methodologies", []))
    )


def restatements(app: App) -> list[dict[str, Any]]:
    """Every restatement with its totals, oldest first, its times in China time (`finished_at`
    None: resumable)."""
    return [
        {
            **r,
            "started_at": queries.aware(r["started_at"]).astimezone(CHINA),
            "finished_at": None
            if r["finished_at"] is None
            else queries.aware(r["finished_at"]).astimezone(CHINA),
        }
        for r in restatement.restatements(app)
    ]


def install(api: FastAPI, app: App) -> None:
    """Add the dashboard's pages to the application."""

    def render(
        name: str, lang: str, page_title: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        html = TEMPLATES.get_template(name).render(
            t=i18n.TEXT[lang], lang=lang, page_title=page_title, **values
        )
        return HTMLResponse(html, status_code=status)

    def chosen(request: Request, lang: str | None) -> str:
        return i18n.language(lang or request.cookies.get("lang"))

    def login_page(lang: str, error: str = "", kind: str = "staff") -> HTMLResponse:
        t = i18n.TEXT[lang]
        if kind == "citizen":
            # Citizens sign in with their phone and a code (`consent_pages`).
            return render("signin.html", lang, t["login"], next="/dashboard/me")
        return render("login.html", lang, t["login"], 401 if error else 200, error=error, kind=kind)

    @api.get("/dashboard/login", include_in_schema=False)
    def login_form(
        request: Request,
        lang: Annotated[str | None, Query(max_length=8)] = None,
        kind: Annotated[str, Query(pattern="^(staff|citizen)$")] = "staff",
    ) -> HTMLResponse:
        return login_page(chosen(request, lang), kind=kind)

    @api.post("/dashboard/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        lang = chosen(request, None)
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        kind = (form.get("kind") or ["staff"])[0]
        token = (form.get("token") or [""])[0].strip()
        if kind != "staff":
            return login_page(lang, kind="citizen")
        try:
            staff = await run_in_threadpool(oversight.verify_staff_token, app, token)
            target = STAFF_HOME[staff.role]
        except AuthenticationError:
            return login_page(lang, i18n.TEXT[lang]["bad_token"], kind)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIES[kind], token, httponly=True, samesite="strict")
        return response

    registry_pages.install(api, app, render, chosen)

    @api.get("/", include_in_schema=False)
    def root() -> Response:
        """The server's address leads to the dashboard."""
        return RedirectResponse("/dashboard", status_code=303)

    @api.get("/dashboard/logout", include_in_schema=False)
    def logout() -> Response:
        response = RedirectResponse("/dashboard", status_code=303)
        for cookie in COOKIES.values():
            response.delete_cookie(cookie)
        return response

    def signed_in_staff(
        request: Request, lang: str, allowed: frozenset[oversight.Role], refusal: str
    ) -> oversight.Staff | HTMLResponse:
        """The staff member signed in, if their role may open the page; else the sign-in
        form (401: nobody signed in) or a page saying why not (403: another role)."""
        try:
            staff = oversight.verify_staff_token(app, request.cookies.get(COOKIES["staff"], ""))
        except AuthenticationError:
            return login_page(lang, kind="staff")
        if staff.role not in allowed:
            t = i18n.TEXT[lang]
            return render(
                "forbidden.html",
                lang,
                t["forbidden"],
                403,
                message=t[refusal],
                who=staff.name,
                role=t[staff.role.value],
                home=STAFF_HOME[staff.role],
            )
        return staff

    def operator(request: Request, lang: str) -> oversight.Staff | HTMLResponse:
        return signed_in_staff(
            request, lang, frozenset({oversight.Role.OPERATOR}), "needs_operator"
        )

    def regulator(request: Request, lang: str) -> oversight.Staff | HTMLResponse:
        # Operators read every statistic a regulator does (`service.oversight`).
        return signed_in_staff(request, lang, frozenset(oversight.Role), "needs_staff")

    @api.get("/dashboard/regulator", include_in_schema=False)
    def regulator_view(
        request: Request, lang: Annotated[str | None, Query(max_length=8)] = None
    ) -> HTMLResponse:
        language = chosen(request, lang)
        staff = regulator(request, language)
        if isinstance(staff, HTMLResponse):
            return staff
        totals = oversight.totals(app)
        return render(
            "regulator.html",
            language,
            i18n.TEXT[language]["regulator"],
            who=staff.name,
            totals=totals,
            tonnes=f"{totals.credited_g / 1_000_000:,.3f}",
            tables=tables(app, language, totals.received, full=True),
            matrix=duplicate_matrix(app),
            common=common_figures(app),
            market=registry_pages.market_figures(app),
            restatements=restatements(app),
            region=lambda code: registry_pages.region_label(app, code, language),
        )

    @api.get("/dashboard/regulator/tables/{name}.{fmt}", include_in_schema=False)
    def regulator_download(
        request: Request,
        name: Annotated[str, Path_(max_length=40)],
        fmt: Annotated[str, Path_(pattern="^(csv|xlsx)$")],
        lang: Annotated[str | None, Query(max_length=8)] = None,
    ) -> Response:
        language = chosen(request, lang)
        staff = regulator(request, language)
        if isinstance(staff, HTMLResponse):
            return staff
        full = tables(app, language, oversight.totals(app).received, full=True)
        return _download(full.get(name), name, fmt)

    @api.get("/dashboard/operator", include_in_schema=False)
    def operator_view(
        request: Request, lang: Annotated[str | None, Query(max_length=8)] = None
    ) -> HTMLResponse:
        language = chosen(request, lang)
        staff = operator(request, language)
        if isinstance(staff, HTMLResponse):
            return staff
        rates = review_queue.rates(app)
        return render(
            "operator.html",
            language,
            i18n.TEXT[language]["operator"],
            who=staff.name,
            tables=operator_tables(app, language),
            matrix=duplicate_matrix(app),
            rates=rates,
            open_held=sum(r.open for r in rates),
            market=registry_pages.market_figures(app),
            region=lambda code: registry_pages.region_label(app, code, language),
        )

    @api.get("/dashboard/operator/tables/{name}.{fmt}", include_in_schema=False)
    def operator_download(
        request: Request,
        name: Annotated[str, Path_(max_length=40)],
        fmt: Annotated[str, Path_(pattern="^(csv|xlsx)$")],
        lang: Annotated[str | None, Query(max_length=8)] = None,
    ) -> Response:
        language = chosen(request, lang)
        staff = operator(request, language)
        if isinstance(staff, HTMLResponse):
            return staff
        return _download(operator_tables(app, language).get(name), name, fmt)

    # The review queue (operators) ---------------------------------------------------------

    def staff_form_token(request: Request) -> str:
        """The token the review forms carry: derived from the staff session, unknown to other
        sites."""
        return consent_pages.form_token(app, request.cookies.get(COOKIES["staff"], ""))

    def review_notice(request: Request, lang: str) -> tuple[str, str]:
        """What the last decision did, or why it was not made (from the redirect's query)."""
        t = i18n.TEXT[lang]
        query = request.query_params
        error = query.get("error", "")
        if error in ("need_reason", "need_selection"):
            return "", t[error]
        if query.get("done", "").isdigit():
            skipped = query.get("skipped", "0")
            n, left = int(query["done"][:9]), int(skipped[:9]) if skipped.isdigit() else 0
            return t["decided_n"].format(n=n, skipped=left), ""
        return "", ""

    @api.get("/dashboard/review", include_in_schema=False)
    def review_view(
        request: Request,
        lang: Annotated[str | None, Query(max_length=8)] = None,
        platform: Annotated[str, Query(max_length=64)] = "",
        reason: Annotated[str, Query(max_length=32)] = "",
        state: Annotated[str, Query(pattern="^(open|decided|all)$")] = "open",
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    ) -> HTMLResponse:
        language = chosen(request, lang)
        staff = operator(request, language)
        if isinstance(staff, HTMLResponse):
            return staff
        held_for = reason if reason in review_queue.HELD_REASONS else ""
        items = review_queue.queue(
            app,
            platform=platform or None,
            reason=held_for or None,
            state=review_queue.State(state),
            limit=PAGE,
            after=after,
        )
        notice, error = review_notice(request, language)
        return render(
            "review.html",
            language,
            i18n.TEXT[language]["review_queue"],
            who=staff.name,
            items=items,
            platforms=[p.code for p in admin.list_platforms(app)],
            held_reasons=[r.value for r in review_queue.HELD_REASONS],
            chosen={"platform": platform, "reason": held_for, "state": state},
            next_after=items[-1].seq if len(items) == PAGE else None,
            reasons=i18n.REASONS[language],
            scenes=i18n.SCENES[language],
            china=CHINA,
            csrf=staff_form_token(request),
            notice=notice,
            error=error,
        )

    @api.get("/dashboard/review/{seq}", include_in_schema=False)
    def review_item_view(
        request: Request,
        seq: Annotated[int, Path_(ge=1, le=2**63 - 1)],
        lang: Annotated[str | None, Query(max_length=8)] = None,
    ) -> HTMLResponse:
        language = chosen(request, lang)
        staff = operator(request, language)
        if isinstance(staff, HTMLResponse):
            return staff
        found = review_queue.item(app, seq)
        notice, error = review_notice(request, language)
        return render(
            "review_item.html",
            language,
            i18n.TEXT[language]["review_item"],
            who=staff.name,
            d=found,
            h=found.held,
            reasons=i18n.REASONS[language],
            scenes=i18n.SCENES[language],
            china=CHINA,
            csrf=staff_form_token(request),
            notice=notice,
            error=error,
        )

    @api.post("/dashboard/review/decisions", include_in_schema=False)
    async def review_decide(request: Request) -> Response:
        language = chosen(request, None)
        staff = await run_in_threadpool(operator, request, language)
        if isinstance(staff, HTMLResponse):
            return staff
        form = parse_qs((await request.body()).decode("utf-8", "replace"), keep_blank_values=True)
        if not hmac.compare_digest(consent_pages.first(form, "csrf"), staff_form_token(request)):
            return login_page(language, kind="staff")
        back = consent_pages.first(form, "back")
        back = back if REVIEW_PAGE.match(back) else "/dashboard/review"
        seqs = [int(v) for v in form.get("seq", []) if v.isdigit() and 0 < len(v) < 20]
        reason = consent_pages.first(form, "reason")
        decision = consent_pages.first(form, "decision")
        if not seqs:
            return RedirectResponse(f"{back}?error=need_selection", status_code=303)
        if not reason.strip():
            return RedirectResponse(f"{back}?error=need_reason", status_code=303)
        if decision not in (Decision.RELEASE.value, Decision.REJECT.value):
            return RedirectResponse(back, status_code=303)
        done = await run_in_threadpool(
            review_queue.decide, app, seqs, Decision(decision), staff.name, reason
        )
        return RedirectResponse(
            f"{back}?done={len(done.decided)}&skipped={len(done.skipped)}", status_code=303
        )

    def citizen(request: Request) -> citizens.Citizen | None:
        """The citizen signed in to puhui with their phone (a member platform's token is not
        a session)."""
        try:
            who = citizens.verify_token(app, request.cookies.get(COOKIES["citizen"], ""))
        except AuthenticationError:
            return None
        return who if who.own_session else None

    @api.get("/dashboard/me", include_in_schema=False)
    def citizen_view(
        request: Request, lang: Annotated[str | None, Query(max_length=8)] = None
    ) -> HTMLResponse:
        language = chosen(request, lang)
        who = citizen(request)
        if who is None:
            return login_page(language, kind="citizen")
        certificates = [
            {"id": o.result["certificate"], "what": i18n.KINDS[language].get(o.kind, o.kind)}
            for o in wallet.operations(app, who.pseudonym, 100)
            if "certificate" in o.result
        ]
        return render(
            "me.html",
            language,
            i18n.TEXT[language]["citizen"],
            held=wallet.holdings(app, who.pseudonym),
            history=citizens.history(app, who, None, 100),
            pending=review_queue.citizen_holds(app, who.pseudonym, 100),
            reasons=i18n.REASONS[language],
            rewards=wallet.list_rewards(app, available_at=app.clock()),
            certificates=certificates,
            kinds=i18n.KINDS[language],
            scenes=i18n.SCENES[language],
            china=CHINA,
            grants=consents.grants(app, who.pseudonym),
            now=app.clock(),
            scope_names=lambda g: consent.scope_text(g.scopes).split(),
            csrf=consent_pages.form_token(app, request.cookies.get(COOKIES["citizen"], "")),
        )

    @api.get("/dashboard/me/credits/{entry_id}", include_in_schema=False)
    def citizen_credit(
        request: Request,
        entry_id: Annotated[int, Path_(ge=1, le=2**63 - 1)],
        lang: Annotated[str | None, Query(max_length=8)] = None,
    ) -> HTMLResponse:
        language = chosen(request, lang)
        who = citizen(request)
        if who is None:
            return login_page(language, kind="citizen")
        explained = citizens.explain_credit(app, who, entry_id)
        if explained.platform != who.platform:
            # Another platform's record id is never shown.
            explained = dataclasses.replace(explained, record_id="")
        return render(
            "credit.html",
            language,
            i18n.TEXT[language]["how_computed"],
            e=explained,
            started=explained.start.astimezone(CHINA) if explained.start else None,
            scene=i18n.SCENES[language].get(explained.scene, explained.scene),
            china=CHINA,
        )

    @api.get("/dashboard", include_in_schema=False)
    def public(
        request: Request, lang: Annotated[str | None, Query(max_length=8)] = None
    ) -> HTMLResponse:
        language = chosen(request, lang)
        totals = publication.totals(app)
        k = publication.min_cell(app)
        response = render(
            "public.html",
            language,
            i18n.TEXT[language]["public"],
            totals=totals,
            hidden=disclosure.label(k),
            note=i18n.TEXT[language]["suppressed_note"].format(k=k),
            tonnes=(None if totals.credited_g is None else f"{totals.credited_g / 1_000_000:,.3f}"),
            tables=tables(app, language, totals.received),
        )
        if lang is not None:
            response.set_cookie("lang", language, max_age=365 * 86_400, samesite="lax")
        return response

    @api.get("/dashboard/tables/{name}.{fmt}", include_in_schema=False)
    def download(
        request: Request,
        name: Annotated[str, Path_(max_length=40)],
        fmt: Annotated[str, Path_(pattern="^(csv|xlsx)$")],
        lang: Annotated[str | None, Query(max_length=8)] = None,
    ) -> Response:
        language = chosen(request, lang)
        received = publication.totals(app).received
        return _download(tables(app, language, received).get(name), name, fmt)


def _download(found: DataTable | None, name: str, fmt: str) -> Response:
    if found is None:
        raise NotFoundError(f"no table {name!r}")
    disposition = {"Content-Disposition": f'attachment; filename="puhui-{name}.{fmt}"'}
    if fmt == "csv":
        return Response(_csv(found), media_type="text/csv; charset=utf-8", headers=disposition)
    return Response(_xlsx(found), media_type=XLSX, headers=disposition)


def _csv(table: DataTable) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    # With a byte-order mark, spreadsheet programs read the Chinese text as UTF-8.
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def _xlsx(table: DataTable) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = table.name[:31]
    sheet.append(table.columns)
    for row in table.rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def kilograms(grams: int) -> Decimal:
    """Grams as kilograms with three decimals, every one shown (`12.000`, not `12.0`)."""
    return Decimal(grams).scaleb(-3).quantize(Decimal("0.001"))


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int | float | Decimal) else str(value)
