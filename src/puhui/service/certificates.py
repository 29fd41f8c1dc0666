"""Certificates of retirement and of trees planted, as an HTML page and as a PDF file.

Both show the same facts: the certificate id (which `puhui certificate show` and
`GET /v1/certificates/{id}` verify), what was retired or planted, when, and for a retirement the
footprint it offsets with its calculation. The citizen appears by a short form of their
pseudonym only. The PDF uses the Adobe CID font STSong-Light, which PDF readers supply, so
Chinese text needs no embedded font file.
"""

from __future__ import annotations

import html as html_lib
import io
from typing import Any

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from puhui.service.wallet import Certificate

FONT = "STSong-Light"


def lines(cert: Certificate) -> tuple[str, list[tuple[str, str]]]:
    """The title and the (label, value) lines of a certificate."""
    r = cert.result
    rows: list[tuple[str, str]] = [
        ("Certificate 证书编号", cert.certificate),
        ("Issued 签发时间", f"{cert.issued_at:%Y-%m-%d %H:%M} UTC"),
    ]
    if cert.kind == "retirement":
        title = "Retirement certificate 碳减排量注销证明"
        rows.append(("Retired 注销减排量", f"{_grams(int(r['retired_g']))} CO2e"))
        footprint: dict[str, Any] | None = r.get("footprint")
        if footprint:
            rows.append(
                (
                    "Offsets 抵消",
                    f"{footprint['kind']}: {footprint['amount']} {footprint['unit']} "
                    f"in {footprint['region']} = {_grams(int(footprint['grams']))} CO2e",
                )
            )
            rows.append(("Formula 计算", footprint["formula"]))
            for term in footprint["terms"]:
                ident = f" [{term['factor_id']}]" if term["factor_id"] else ""
                rows.append(
                    (
                        f"  {term['name']}",
                        f"{term['value']} {term['unit']} ({term['evidence']}){ident}",
                    )
                )
        rows.append(("Note 说明", "Retired grams can never be spent, moved or retired again."))
    else:
        title = "Tree certificate 植树证书"
        rows.append(("Tree number 树木编号", str(r["tree_number"])))
        rows.append(("Project 项目", str(r.get("project") or r["reward"])))
        rows.append(("Paid 支付", f"{r['price']} {r['unit']}"))
    rows.append(("Ledger entry 账本分录", str(r["entry"])))
    return title, rows


def html(cert: Certificate) -> str:
    """The certificate as a self-contained HTML page (no external assets)."""
    title, rows = lines(cert)
    body = "\n".join(
        f"<tr><th scope='row'>{html_lib.escape(k)}</th><td>{html_lib.escape(v)}</td></tr>"
        for k, v in rows
    )
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html_lib.escape(title)} {html_lib.escape(cert.certificate)}</title>
<style>
body {{ font-family: system-ui, "Noto Sans CJK SC", sans-serif; margin: 2rem auto;
       max-width: 44rem; color: #111; }}
h1 {{ font-size: 1.5rem; border-bottom: 3px solid #1b5e20; padding-bottom: .5rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ccc;
         vertical-align: top; }}
th {{ width: 40%; font-weight: 600; }}
footer {{ margin-top: 1.5rem; font-size: .9rem; color: #333; }}
</style>
</head>
<body>
<main>
<h1>{html_lib.escape(title)}</h1>
<table>
{body}
</table>
<footer>Verify at /v1/certificates/{html_lib.escape(cert.certificate)} · puhui 碳普惠</footer>
</main>
</body>
</html>
"""


def pdf(cert: Certificate) -> bytes:
    """The certificate as a one-page A4 PDF."""
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    title, rows = lines(cert)
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4, invariant=True)
    page.setTitle(f"{title} {cert.certificate}")
    height = A4[1]
    y = height - 72
    page.setFont(FONT, 18)
    page.drawString(72, y, title)
    y -= 36
    for label, value in rows:
        page.setFont(FONT, 10)
        page.drawString(72, y, label)
        page.setFont(FONT, 11)
        page.drawString(240, y, value[:80])
        y -= 20
        if y < 72:
            break
    page.setFont(FONT, 9)
    page.drawString(72, 48, f"Verify: /v1/certificates/{cert.certificate}")
    page.showPage()
    page.save()
    return buffer.getvalue()


def _grams(g: int) -> str:
    return f"{g:,} g" if g < 1000 else f"{g / 1000:,.3f} kg"
