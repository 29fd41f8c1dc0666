"""The web dashboard: public figures of the common mechanism, served by the API's application.

Pages are rendered on the server (Jinja2) with their charts as inline SVG, so they need no
script, font or stylesheet from anywhere else and work offline. Every table can be downloaded
as CSV or Excel. Chinese by default, English with `?lang=en` (remembered in a cookie).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi import Path as Path_
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape
from openpyxl import Workbook

from puhui.bootstrap import App
from puhui.domain.errors import NotFoundError
from puhui.entrypoints import i18n
from puhui.service import oversight

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
BAR_WIDTH = 360  # px of the longest bar


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
        """Bars for the chart column, scaled to the largest value."""
        if self.chart_column is None or not self.rows:
            return
        values = [float(r[self.chart_column]) for r in self.rows]
        top = max(values) or 1.0
        self.bars = [
            (str(r[0]), BAR_WIDTH * v / top, _number(r[self.chart_column]))
            for r, v in zip(self.rows, values, strict=True)
        ]


def tables(app: App, lang: str, received: int) -> dict[str, DataTable]:
    """Every table of the public dashboard, in one language (`received`: every record
    received, against which duplicates and rejections are counted)."""
    t = i18n.TEXT[lang]
    scenes = i18n.SCENES[lang]
    regions = app.catalogue.regions
    kg = t["reduction_kg"]

    def reductions(name: str, by: oversight.Dimension, label: Callable[[str], str]) -> DataTable:
        rows = [
            [label(r.key), round(r.credited_g / 1000, 3), r.records, r.participants]
            for r in oversight.reductions(app, by)
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

    out = {
        "by_province": reductions("by_province", oversight.Dimension.PROVINCE, province),
        "by_scene": reductions("by_scene", oversight.Dimension.SCENE, lambda s: scenes.get(s, s)),
        "by_platform": reductions("by_platform", oversight.Dimension.PLATFORM, str),
        "by_month": reductions("by_month", oversight.Dimension.MONTH, str),
    }
    counted: dict[tuple[str, str], int] = {}
    for r in oversight.outcomes(app):
        if r.status != "credited":
            counted[(r.status, r.reason)] = counted.get((r.status, r.reason), 0) + r.records
    reasons = i18n.REASONS[lang]
    rows = [
        [
            f"{t[status]}: {reasons.get(reason, reason)}",
            n,
            f"{100 * n / received:.2f} %" if received else "",
        ]
        for (status, reason), n in sorted(counted.items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    outcomes = DataTable(
        "outcomes", t["outcomes"], [t["reason"], t["records"], t["share"]], rows, chart_column=1
    )
    outcomes.chart()
    out["outcomes"] = outcomes
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
            if m.in_force(today)
        ],
    )
    return out


def install(api: FastAPI, app: App) -> None:
    """Add the dashboard's pages to the application."""

    @api.get("/dashboard", include_in_schema=False)
    def public(
        request: Request, lang: Annotated[str | None, Query(max_length=8)] = None
    ) -> HTMLResponse:
        chosen = i18n.language(lang or request.cookies.get("lang"))
        totals = oversight.totals(app)
        page = TEMPLATES.get_template("public.html").render(
            t=i18n.TEXT[chosen],
            lang=chosen,
            totals=totals,
            tonnes=f"{totals.credited_g / 1_000_000:,.3f}",
            tables=tables(app, chosen, totals.received),
            bar_width=BAR_WIDTH,
        )
        response = HTMLResponse(page)
        if lang is not None:
            response.set_cookie("lang", chosen, max_age=365 * 86_400, samesite="lax")
        return response

    @api.get("/dashboard/tables/{name}.{fmt}", include_in_schema=False)
    def download(
        request: Request,
        name: Annotated[str, Path_(max_length=40)],
        fmt: Annotated[str, Path_(pattern="^(csv|xlsx)$")],
        lang: Annotated[str | None, Query(max_length=8)] = None,
    ) -> Response:
        chosen = i18n.language(lang or request.cookies.get("lang"))
        found = tables(app, chosen, oversight.totals(app).received).get(name)
        if found is None:
            raise NotFoundError(f"no table {name!r}")
        filename = f"puhui-{name}.{fmt}"
        disposition = {"Content-Disposition": f'attachment; filename="{filename}"'}
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


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int | float) else str(value)
