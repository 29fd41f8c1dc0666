"""Routes anyone may call: the methodologies puhui applies, the published statistics (every
figure describing fewer than k citizens suppressed: `service.publication`), the rewards and
points programmes, a footprint with its explanation, and the verification of a certificate.
"""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, Response
from fastapi import Path as Path_

from puhui.domain import footprints
from puhui.domain.errors import NotFoundError
from puhui.entrypoints.api.deps import AppDep
from puhui.entrypoints.api.schemas import (
    MethodologyOut,
    PublishedOutcomeOut,
    PublishedReductionOut,
    PublishedTotalsOut,
)
from puhui.entrypoints.api.wallet_schemas import (
    CertificateOut,
    FootprintIn,
    FootprintOut,
    ProgrammeOut,
    RewardOut,
)
from puhui.entrypoints.http import problem_doc
from puhui.service import certificates, publication, wallet

router = APIRouter()

CERTIFICATE_RESPONSES: dict[int | str, dict[str, Any]] = {404: problem_doc()}
CertificateId = Annotated[str, Path_(max_length=40)]


@router.get(
    "/v1/methodologies",
    response_model=list[MethodologyOut],
    tags=["methodologies"],
    summary="Every methodology version puhui applies",
)
def methodologies(app: AppDep) -> list[MethodologyOut]:
    """Public: formulas, caps, parameters with sources, jurisdiction and effective dates."""
    return [MethodologyOut.of(m) for m in app.catalogue.methodologies]


@router.get(
    "/v1/methodologies/{methodology_id}",
    response_model=list[MethodologyOut],
    tags=["methodologies"],
    responses={404: problem_doc()},
    summary="Every version of one methodology",
)
def methodology_versions(methodology_id: str, app: AppDep) -> list[MethodologyOut]:
    """The versions of one methodology, oldest first."""
    found = [MethodologyOut.of(m) for m in app.catalogue.methodologies if m.id == methodology_id]
    if not found:
        raise NotFoundError(f"no methodology {methodology_id!r}")
    return found


@router.get(
    "/v1/statistics/totals",
    response_model=PublishedTotalsOut,
    tags=["statistics"],
    summary="Everything credited, as published",
)
def statistics_totals(app: AppDep) -> PublishedTotalsOut:
    """Public: grams credited, credited records, distinct citizens, platforms that credited and
    records received; null with `suppressed` when fewer than `min_cell` citizens were
    credited."""
    found = publication.totals(app)
    return PublishedTotalsOut(**dataclasses.asdict(found), min_cell=publication.min_cell(app))


@router.get(
    "/v1/statistics/reductions",
    response_model=list[PublishedReductionOut],
    tags=["statistics"],
    summary="Reductions by province, scene, platform or month, as published",
)
def statistics_reductions(app: AppDep, by: publication.Breakdown) -> list[PublishedReductionOut]:
    """Public: grams credited, credited records and distinct citizens per value, largest first
    (months in calendar order). A value of fewer than `min_cell` citizens is null with
    `suppressed`, and so is the next smallest of the list, so that it cannot be worked out from
    the totals."""
    return [PublishedReductionOut(**dataclasses.asdict(r)) for r in publication.reductions(app, by)]


@router.get(
    "/v1/statistics/outcomes",
    response_model=list[PublishedOutcomeOut],
    tags=["statistics"],
    summary="Duplicates and rejections by reason, as published",
)
def statistics_outcomes(app: AppDep) -> list[PublishedOutcomeOut]:
    """Public: records found duplicate or rejected per reason code over every platform, most
    first (a record failing several checks counts under each reason), suppressed as the
    reductions are."""
    return [PublishedOutcomeOut(**dataclasses.asdict(o)) for o in publication.outcomes(app)]


@router.get(
    "/v1/rewards",
    response_model=list[RewardOut],
    tags=["rewards"],
    summary="Rewards that can be redeemed now",
)
def rewards(app: AppDep) -> list[RewardOut]:
    """Public: price, stock left, per-citizen limit and window of each."""
    return [RewardOut.of(r) for r in wallet.list_rewards(app, available_at=app.clock())]


@router.get(
    "/v1/programmes",
    response_model=list[ProgrammeOut],
    tags=["rewards"],
    summary="Points programmes",
)
def programmes(app: AppDep) -> list[ProgrammeOut]:
    """Public: how credited grams earn points in each programme, and when points expire."""
    return [ProgrammeOut.of(p) for p in wallet.list_programmes(app)]


@router.post(
    "/v1/footprints",
    response_model=FootprintOut,
    tags=["rewards"],
    responses={422: problem_doc()},
    summary="Compute a footprint, with its explanation",
)
def footprint(body: FootprintIn, app: AppDep) -> FootprintOut:
    """Public: the grams a retirement would have to cover, with factors and sources."""
    declared = footprints.compute(app.catalogue, body.kind, body.amount, body.region)
    return FootprintOut(
        grams=declared.grams, footprint=declared.as_dict(), explanation=declared.explanation()
    )


@router.get(
    "/v1/certificates/{certificate}",
    response_model=CertificateOut,
    tags=["rewards"],
    responses=CERTIFICATE_RESPONSES,
    summary="Verify a certificate",
)
def certificate(certificate: CertificateId, app: AppDep) -> CertificateOut:
    """Public: anyone holding a certificate id can check it (ids cannot be guessed)."""
    return CertificateOut(**dataclasses.asdict(wallet.verify_certificate(app, certificate)))


@router.get(
    "/v1/certificates/{certificate}/html",
    tags=["rewards"],
    responses={200: {"content": {"text/html": {}}}, **CERTIFICATE_RESPONSES},
    response_class=Response,
    summary="A certificate as a web page",
)
def certificate_html(certificate: CertificateId, app: AppDep) -> Response:
    """Self-contained: no external assets."""
    found = wallet.verify_certificate(app, certificate)
    return Response(certificates.html(found), media_type="text/html; charset=utf-8")


@router.get(
    "/v1/certificates/{certificate}/pdf",
    tags=["rewards"],
    responses={200: {"content": {"application/pdf": {}}}, **CERTIFICATE_RESPONSES},
    response_class=Response,
    summary="A certificate as a PDF file",
)
def certificate_pdf(certificate: CertificateId, app: AppDep) -> Response:
    """One A4 page."""
    found = wallet.verify_certificate(app, certificate)
    return Response(
        certificates.pdf(found),
        media_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="{found.certificate}.pdf"'},
    )
