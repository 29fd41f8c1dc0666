"""Published statistics protect individuals: the public API, the public dashboard and its
downloads show no figure of fewer than k citizens (nor the figure that would give it away from
a total), while a regulator reads every figure; k is a setting."""

from __future__ import annotations

import csv
import dataclasses
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from puhui.bootstrap import App
from puhui.config import Settings
from puhui.domain.errors import ConfigurationError
from puhui.entrypoints.api import create_app
from puhui.entrypoints.dashboard import COOKIES
from puhui.service import admin, ingest, oversight, publication
from tests.builders import trip

# Citizens credited per province: Sichuan 5, Beijing 3, Guangdong 2; and one rejection.
CITIZENS = {"510100": 5, "110000": 3, "440300": 2}


def _phone(n: int) -> str:
    return f"139{n:08d}"


@pytest.fixture
def published(app: App) -> Iterator[tuple[App, TestClient]]:
    """Ten citizens in three provinces (5, 3 and 2), one rejected record, k = 3."""
    admin.add_platform(app, "amap")
    records, n = [], 0
    for region, citizens in CITIZENS.items():
        for _ in range(citizens):
            n += 1
            records.append(trip(f"t{n}", subject=_phone(n), region=region))
    records.append(trip("bad", subject=_phone(99), region="999999"))
    ingest.ingest_records(app, "amap", records)
    app.settings = dataclasses.replace(app.settings, min_cell=3)
    with TestClient(create_app(app)) as client:
        yield app, client


def _regulator(app: App) -> str:
    issued = oversight.issue_staff_token(app, "MEE auditor", oversight.Role.REGULATOR)
    return issued.token


def test_the_public_api_shows_no_figure_of_fewer_than_k_citizens(
    published: tuple[App, TestClient],
) -> None:
    _, client = published
    rows = {r["key"]: r for r in client.get("/v1/statistics/reductions?by=province").json()}
    # Guangdong (2 < 3) is suppressed, and Beijing (3) with it: the total minus Sichuan and
    # Beijing would give Guangdong.
    assert rows["440000"] == {
        "key": "440000", "credited_g": None, "records": None, "participants": None,
        "suppressed": True,
    }  # fmt: skip
    assert rows["110000"]["suppressed"] is True
    assert rows["110000"]["participants"] is None
    assert (rows["510000"]["participants"], rows["510000"]["suppressed"]) == (5, False)
    for by in ("province", "scene", "platform", "month"):
        for row in client.get(f"/v1/statistics/reductions?by={by}").json():
            assert row["suppressed"] or row["participants"] >= 3, (by, row)
    # Regions nest in provinces and days in months: not published.
    for by in ("region", "day"):
        assert client.get(f"/v1/statistics/reductions?by={by}").status_code == 422
    totals = client.get("/v1/statistics/totals").json()
    assert (totals["participants"], totals["suppressed"], totals["min_cell"]) == (10, False, 3)
    # One citizen's rejected record.
    [rejected] = client.get("/v1/statistics/outcomes").json()
    assert rejected == {
        "status": "rejected", "reason": "unknown_region", "records": None, "suppressed": True
    }  # fmt: skip


def test_a_regulator_reads_the_figures_the_public_does_not(
    published: tuple[App, TestClient],
) -> None:
    app, client = published
    headers = {"Authorization": f"Bearer {_regulator(app)}"}
    rows = client.get("/v1/oversight/reductions?by=province", headers=headers).json()
    assert {r["key"]: r["participants"] for r in rows} == {
        "510000": 5, "110000": 3, "440000": 2,
    }  # fmt: skip
    outcomes = client.get("/v1/oversight/outcomes", headers=headers).json()
    assert [(o["reason"], o["records"]) for o in outcomes if o["status"] == "rejected"] == [
        ("unknown_region", 1)
    ]


def _public_csv(client: TestClient, name: str) -> list[list[str]]:
    response = client.get(f"/dashboard/tables/{name}.csv?lang=en")
    assert response.status_code == 200
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def test_the_public_page_and_its_downloads_show_no_figure_of_fewer_than_k_citizens(
    published: tuple[App, TestClient],
) -> None:
    app, client = published
    page = client.get("/dashboard?lang=en").text
    guangdong = re.search(r"<tr><td[^>]*>Guangdong</td>(.*?)</tr>", page)
    assert guangdong, page
    assert re.findall(r"<td[^>]*>([^<]*)</td>", guangdong.group(1)) == ["&lt;3"] * 3
    assert "not published" in page
    assert "Guangdong" not in re.sub(r"<tr>.*?</tr>", "", page)  # no bar drawn for it
    for name in ("by_province", "by_scene", "by_platform", "by_month"):
        header, *rows = _public_csv(client, name)
        assert header[3] == "Participants"
        for row in rows:
            assert row[1:] == ["<3"] * 3 or int(row[3]) >= 3, (name, row)
    provinces = {r[0]: r[1:] for r in _public_csv(client, "by_province")[1:]}
    assert provinces["Guangdong"] == ["<3"] * 3
    assert provinces["Sichuan"][2] == "5"
    assert _public_csv(client, "outcomes")[1][1:] == ["<3", "<3"]

    # The same figures, signed in as a regulator: Guangdong's two citizens, and the file.
    client.cookies.set(COOKIES["staff"], _regulator(app))
    full = client.get("/dashboard/regulator?lang=en")
    assert full.status_code == 200
    shown = re.search(r"<tr><td[^>]*>Guangdong</td>(.*?)</tr>", full.text)
    assert shown
    assert re.findall(r"<td[^>]*>([^<]*)</td>", shown.group(1))[1:] == ["2", "2"]
    download = client.get("/dashboard/regulator/tables/by_province.csv?lang=en")
    last = list(csv.reader(io.StringIO(download.content.decode("utf-8-sig"))))[-1]
    assert [last[0], last[3]] == ["Guangdong", "2"]


def test_k_is_a_setting(published: tuple[App, TestClient], monkeypatch: Any) -> None:
    app, client = published
    app.settings = dataclasses.replace(app.settings, min_cell=2)
    rows = {r["key"]: r for r in client.get("/v1/statistics/reductions?by=province").json()}
    assert {k: r["participants"] for k, r in rows.items()} == {
        "510000": 5, "110000": 3, "440000": 2,
    }  # fmt: skip
    app.settings = dataclasses.replace(app.settings, min_cell=6)
    assert all(r.suppressed for r in publication.reductions(app, publication.Breakdown.PROVINCE))
    assert not publication.totals(app).suppressed
    app.settings = dataclasses.replace(app.settings, min_cell=11)
    assert publication.totals(app).suppressed
    assert client.get("/v1/statistics/totals").json()["credited_g"] is None

    monkeypatch.setenv("PUHUI_MIN_CELL", "25")
    assert Settings.load("sqlite://").min_cell == 25
    monkeypatch.delenv("PUHUI_MIN_CELL")
    assert Settings.load("sqlite://").min_cell == 10
    for wrong in ("0", "ten", "-3", "３"):
        monkeypatch.setenv("PUHUI_MIN_CELL", wrong)
        with pytest.raises(ConfigurationError, match="PUHUI_MIN_CELL"):
            Settings.load("sqlite://")
