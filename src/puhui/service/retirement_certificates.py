"""A company's certificate of retired units, as an HTML page and as a PDF file.

Both show the same facts, from the public registry (`service.registry.retirement`): the
certificate id, the company by its name and unified social credit code, the units retired, the
beneficiary and the purpose, when (China time), the serial numbers retired, and for each batch
they come from its methodology version, vintage, region and Merkle root, which anyone can check
a citizen's credit against. The certificate is verified at `/registry/retirements/{id}`: an id
whose keyed check fails names no certificate. The PDF uses the Adobe CID font STSong-Light,
which PDF readers supply, so Chinese text needs no embedded font file.
"""

from __future__ import annotations

import html as html_lib
import io
from dataclasses import dataclass
from datetime import datetime, timezone

from reportlab.lib.pagesizes import A4
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfgen import canvas

from puhui.bootstrap import App
from puhui.domain import china_time
from puhui.service import registry
from puhui.service.registry import BatchView, RetirementView

FONT = "STSong-Light"
CHINA = timezone(china_time.OFFSET, "CST")
TITLE = "Retirement certificate 核证减排量注销证明"


def verify_path(certificate: str) -> str:
    """Where anyone verifies a retirement certificate: its page in the public registry."""
    return f"/registry/retirements/{certificate}"


@dataclass(frozen=True, slots=True)
class RetirementCertificate:
    """A retirement and the batches its units come from (oldest first)."""

    retirement: RetirementView
    batches: list[BatchView]
    regions: dict[str, str]

    @property
    def certificate(self) -> str:
        return self.retirement.certificate

    @property
    def retired_at(self) -> datetime:
        """When the units were retired, China time."""
        return self.retirement.at.astimezone(CHINA)


def find(app: App, certificate: str) -> RetirementCertificate:
    """The certificate an id names, when its keyed check holds.

    Raises:
        NotFoundError: not a valid certificate id, or no such retirement.
    """
    found = registry.retirement(app, certificate)
    batches: dict[int, BatchView] = {}
    for text in found.serials:
        batch = registry.batch(app, text)
        batches.setdefault(batch.id, batch)
    ordered = sorted(batches.values(), key=lambda b: b.id)
    names = {b.region: region_name(app, b.region) for b in ordered}
    return RetirementCertificate(found, ordered, names)


def region_name(app: App, region: str) -> str:
    """A region code (a GB/T 2260 prefix of 2, 4 or 6 digits) with its Chinese name."""
    found = app.catalogue.regions.get(region.ljust(6, "0"))
    return f"{region} {found.name}" if found else region


def lines(cert: RetirementCertificate) -> tuple[str, list[tuple[str, str]]]:
    """The title and the (label, value) lines of a retirement certificate."""
    r = cert.retirement
    rows: list[tuple[str, str]] = [
        ("Certificate 证书编号", r.certificate),
        ("Company 企业", r.company_name),
        ("USCC 统一社会信用代码", r.company),
        ("Units retired 注销数量", f"{r.units:,} t CO2e ({r.units:,} units 个单位)"),
        ("Beneficiary 受益方", r.beneficiary),
        ("Purpose 用途", r.purpose),
        ("Retired on 注销时间", f"{cert.retired_at:%Y-%m-%d %H:%M} China time 北京时间"),
    ]
    rows += [("Serial numbers 序列号", serial) for serial in r.serials]
    for batch in cert.batches:
        rows += [
            ("Batch 批次", batch.serial),
            ("  Methodology 方法学", batch.methodology),
            ("  Vintage 减排年月", batch.vintage),
            ("  Region 地区", cert.regions.get(batch.region, batch.region)),
            ("  Merkle root 默克尔根", batch.root),
        ]
    rows.append(("Verify 验证", verify_path(r.certificate)))
    rows.append(
        (
            "Note 说明",
            "Retired units can never be sold, moved or retired again. "
            "已注销的减排量不可再出售、转让或注销。",
        )
    )
    return TITLE, rows


def html(cert: RetirementCertificate) -> str:
    """The certificate as a self-contained HTML page (no external assets)."""
    title, rows = lines(cert)
    body = "\n".join(
        f"<tr><th scope='row'>{html_lib.escape(k.strip())}</th>"
        f"<td{_cell_class(k)}>{html_lib.escape(v)}</td></tr>"
        for k, v in rows
    )
    ident = html_lib.escape(cert.certificate)
    where = html_lib.escape(verify_path(cert.certificate))
    return f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html_lib.escape(title)} {ident}</title>
<style>
body {{ font-family: system-ui, "Noto Sans CJK SC", sans-serif; margin: 2rem auto;
       max-width: 48rem; padding: 0 1rem; color: #111; }}
h1 {{ font-size: 1.5rem; border-bottom: 3px solid #1b5e20; padding-bottom: .5rem; }}
table {{ border-collapse: collapse; width: 100%; }}
th, td {{ text-align: left; padding: .4rem .6rem; border-bottom: 1px solid #ccc;
         vertical-align: top; }}
th {{ width: 36%; font-weight: 600; }}
td.code {{ font-family: ui-monospace, monospace; overflow-wrap: anywhere; }}
a {{ color: #1b5e20; }}
footer {{ margin-top: 1.5rem; font-size: .9rem; color: #333; }}
</style>
</head>
<body>
<main>
<h1>{html_lib.escape(title)}</h1>
<table data-testid="certificate">
{body}
</table>
<footer>
<p>Verify at 验证地址 <a href="{where}">{where}</a>
· <a href="{where}.pdf">PDF</a>
· <a href="/registry">Registry 登记簿</a> · puhui 碳普惠</p>
</footer>
</main>
</body>
</html>
"""


def pdf(cert: RetirementCertificate) -> bytes:
    """The certificate as an A4 PDF: one page, more when it retires many serial ranges."""
    if FONT not in pdfmetrics.getRegisteredFontNames():
        pdfmetrics.registerFont(UnicodeCIDFont(FONT))
    title, rows = lines(cert)
    buffer = io.BytesIO()
    page = canvas.Canvas(buffer, pagesize=A4, invariant=True)
    page.setTitle(f"{title} {cert.certificate}")
    width, height = A4
    left, column, bottom = 56, 220, 72
    y = height - 72
    page.setFont(FONT, 18)
    page.drawString(left, y, title)
    y -= 36
    for label, value in rows:
        wrapped = wrap(value, width - column - left, 10)
        if y - 14 * (len(wrapped) - 1) < bottom:
            _footer(page, cert)
            page.showPage()
            y = height - 72
        page.setFont(FONT, 9)
        page.drawString(left, y, label)
        page.setFont(FONT, 10)
        for part in wrapped:
            page.drawString(column, y, part)
            y -= 14
        y -= 6
    _footer(page, cert)
    page.showPage()
    page.save()
    return buffer.getvalue()


def wrap(text: str, width: float, size: float) -> list[str]:
    """A text cut into lines no wider than `width` points in the certificate's font: at spaces
    where it can, else between characters (a serial number or a root is never shortened)."""
    out: list[str] = []
    line = ""
    for word in text.split(" "):
        candidate = f"{line} {word}" if line else word
        if pdfmetrics.stringWidth(candidate, FONT, size) <= width:
            line = candidate
            continue
        if line:
            out.append(line)
        line = ""
        for char in word:
            if pdfmetrics.stringWidth(line + char, FONT, size) > width and line:
                out.append(line)
                line = ""
            line += char
    out.append(line)
    return out


def _footer(page: canvas.Canvas, cert: RetirementCertificate) -> None:
    page.setFont(FONT, 9)
    page.drawString(56, 48, f"Verify 验证: {verify_path(cert.certificate)}")


def _cell_class(label: str) -> str:
    codes = ("Certificate", "USCC", "Serial", "Batch", "Merkle", "Verify")
    return " class='code'" if label.strip().startswith(codes) else ""
