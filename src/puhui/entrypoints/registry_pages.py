"""The public registry of certified units on the web, and the market's buffers for staff.

`/registry` lists every batch (its serial numbers, methodology version, region, vintage, units
by holder and Merkle root), what each company holds, and every retirement with its certificate.
`/registry/retirements/{id}` is a retirement's certificate (`.pdf` for its PDF file): an id
whose keyed check fails names none (404). The operator's and the regulator's views show each
batch's buffer and shortfall (`market_figures`), and the grams waiting in each certification
pool. Chinese by default, English with `?lang=en`, like the dashboard.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timezone
from typing import Annotated

from fastapi import FastAPI, Query, Request, Response
from fastapi import Path as Path_
from fastapi.responses import HTMLResponse

from puhui.bootstrap import App
from puhui.domain import china_time
from puhui.domain.errors import NotFoundError
from puhui.entrypoints import i18n
from puhui.service import registry, retirement_certificates
from puhui.service.registry import BatchView

CHINA = timezone(china_time.OFFSET, "CST")

Render = Callable[..., HTMLResponse]
Chosen = Callable[[Request, str | None], str]


@dataclass(frozen=True, slots=True)
class Holding:
    """A company's account: the units it holds and their serial numbers."""

    uscc: str
    name: str
    held: int
    retired: int
    serials: list[str]


@dataclass(frozen=True, slots=True)
class Pool:
    """Grams certified for a methodology version and a region, waiting for the next batch."""

    methodology: str
    region: str
    grams: int


@dataclass(frozen=True, slots=True)
class MarketFigures:
    """What staff see of the market: every batch with its buffer and shortfall, the pools, and
    the shortfall over all batches (0 when none)."""

    batches: list[BatchView]
    pools: list[Pool]
    shortfall_g: int


def region_label(app: App, region: str, lang: str) -> str:
    """A region code with its name in the page's language."""
    code = region.ljust(6, "0")
    if lang == "en" and code in i18n.PROVINCES_EN:
        return f"{region} {i18n.PROVINCES_EN[code]}"
    return retirement_certificates.region_name(app, region)


def holdings(app: App) -> list[Holding]:
    """Every company with the serial numbers it holds (not those it retired)."""
    return [
        Holding(
            c.uscc,
            c.name,
            c.held,
            c.retired,
            [b.serial for b in c.blocks if b.holder == "company"],
        )
        for c in registry.companies(app)
    ]


def market_figures(app: App) -> MarketFigures:
    """Every batch's buffer and shortfall, and the certification pools."""
    batches = registry.batches(app)
    pools = []
    for row in registry.reads(app).pool():
        # A pool's account is `pool:<methodology>:<region>`.
        methodology, _, region = str(row["code"]).removeprefix("pool:").rpartition(":")
        pools.append(Pool(methodology, region, int(row["grams"])))
    return MarketFigures(batches, pools, sum(b.shortfall_g for b in batches))


def install(api: FastAPI, app: App, render: Render, chosen: Chosen) -> None:
    """Add the registry's public pages to the application (`render` and `chosen`: the
    dashboard's page renderer and language choice)."""

    @api.get("/registry", include_in_schema=False)
    def registry_page(
        request: Request, lang: Annotated[str | None, Query(max_length=8)] = None
    ) -> HTMLResponse:
        language = chosen(request, lang)
        response = render(
            "registry.html",
            language,
            i18n.TEXT[language]["registry"],
            batches=registry.batches(app),
            holdings=holdings(app),
            retirements=registry.retirements(app),
            region=lambda code: region_label(app, code, language),
            china=CHINA,
        )
        if lang is not None:
            response.set_cookie("lang", language, max_age=365 * 86_400, samesite="lax")
        return response

    # Declared first: `{certificate}` alone would also match an id followed by `.pdf`.
    @api.get("/registry/retirements/{certificate}.pdf", include_in_schema=False)
    def retirement_pdf(certificate: Annotated[str, Path_(max_length=40)]) -> Response:
        found = retirement_certificates.find(app, certificate)
        return Response(
            retirement_certificates.pdf(found),
            media_type="application/pdf",
            headers={"Content-Disposition": f'inline; filename="{found.certificate}.pdf"'},
        )

    @api.get("/registry/retirements/{certificate}", include_in_schema=False)
    def retirement_page(
        request: Request,
        certificate: Annotated[str, Path_(max_length=40)],
        lang: Annotated[str | None, Query(max_length=8)] = None,
    ) -> Response:
        try:
            found = retirement_certificates.find(app, certificate)
        except NotFoundError:
            language = chosen(request, lang)
            return render(
                "registry_missing.html",
                language,
                i18n.TEXT[language]["certificate"],
                404,
                certificate=certificate,
            )
        return HTMLResponse(retirement_certificates.html(found))
