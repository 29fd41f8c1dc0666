"""Restating credits when a methodology version is corrected, on SQLite and PostgreSQL.

The demo's sample files are received while the catalogue has `sz-public-transit@1.0.0` (metro
46.8 g/pkm, the 2021-12 launch figure), then 1.0.1 corrects it (46.7 g/pkm, 2022-09):
`restate --dry-run` reports what a run posts, the run posts it, a second run posts nothing,
`ledger verify` holds, and a forged restatement is caught. Certified credits are adjusted
through their pool or their batch's buffer; a citizen's scene with a held record waits.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import text

from bench.generate import generate
from puhui.adapters.methodology_files import load_catalogue
from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.domain.errors import InputError, NotFoundError
from puhui.domain.methodology import Cap, Catalogue, Methodology, MethodologyStatus
from puhui.service import admin, ingest, ledger, market, queries, restatement, wallet
from tests.builders import event, trip
from tests.forging import forge

NOW = datetime(2026, 11, 20, tzinfo=UTC)
SZ = "sz-public-transit"
CORRECTED, CORRECTION = f"{SZ}@1.0.0", f"{SZ}@1.0.1"
# The checks the forgeries of this module prove (see test_verify_forgeries).
RESTATEMENT_CHECKS = frozenset({"credit_misrestated"})

FULL = load_catalogue()


def without(catalogue: Catalogue, ref: str) -> Catalogue:
    """The catalogue as it was before a version was shipped."""
    kept = [m for m in catalogue.methodologies if m.ref != ref]
    return Catalogue(kept, catalogue.factors, catalogue.regions)


def use(app: App, catalogue: Catalogue) -> None:
    """Have the application compute with another catalogue (`App.catalogue` is cached)."""
    app.__dict__["catalogue"] = catalogue


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    instance = bootstrap(Settings(database_url, tmp_path / "subject.key"), clock=lambda: NOW)
    admin.init(instance)
    use(instance, without(FULL, CORRECTION))
    yield instance
    instance.close()


def _rows(app: App, sql: str) -> list[tuple[object, ...]]:
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql))]


def _demo(app: App, folder: Path) -> None:
    """The demo's sample files, received under the catalogue before 1.0.1."""
    truth = generate(folder, records=3000, seed=11, received_at=NOW)
    for platform in sorted({p for p, _ in truth.files}):
        admin.add_platform(app, platform)
    for platform, path in truth.files:
        ingest.ingest_files(app, platform, [path], chunk_size=500)


def test_restating_the_demo_from_1_0_0_to_1_0_1(app: App, tmp_path: Path) -> None:
    _demo(app, tmp_path / "files")
    # Shenzhen Metro's October credits are certified (into the pool: less than a unit).
    wallet.add_programme(app, "green", "Green", Decimal("10"), starts_at=NOW - timedelta(90),
                         certifies=True, platform="szmetro")  # fmt: skip
    wallet.run_jobs(app)
    certified = market.certify(app, "2026-10", CORRECTED, "44", "c-1", "ops", programme="green")
    assert certified.result["credits"] > 0
    metro = _rows(
        app,
        "select count(*), sum(reduction_g) from records where methodology = "
        f"'{CORRECTED}' and scene = 'metro' and status = 'credited'",
    )[0]
    assert metro[0] > 50
    use(app, FULL)
    assert ledger.verify(app) == []
    before = _rows(app, "select count(*) from transfers")[0][0]

    dry = restatement.restate(app, SZ, "1.0.1", "ops", dry_run=True).as_dict()
    assert _rows(app, "select count(*) from transfers")[0][0] == before
    assert _rows(app, "select count(*) from restatements")[0][0] == 0
    done = restatement.restate(app, SZ, "1.0.1", "ops", dry_run=False).as_dict()
    # The dry run's figures, per region and scene, are what the run posted.
    assert {k: v for k, v in dry.items() if k not in ("dry_run", "restatement")} == {
        k: v for k, v in done.items() if k not in ("dry_run", "restatement")
    }
    assert done["finished"]
    assert done["waiting"] == 0
    # Only metro changed (bus is 26.9 in both), always down: 46.8 → 46.7 per km.
    assert {(p["region"], p["scene"]) for p in done["by_place"]} == {("440300", "metro")}
    assert done["delta_g"] < 0
    assert done["by_place"][0]["increased_g"] == 0
    # Each credit is settled again: amount × 46.7, rounded down, under the same caps.
    restated = _rows(
        app,
        "select r.scene, r.amount_milli, r.reduction_g, r.reason, x.grams_before, x.grams, "
        "x.methodology from restated_credits x join records r on r.seq = x.record_seq",
    )
    per_km = {"metro": (Decimal("46.8"), Decimal("46.7")), "bus": (Decimal("26.9"),) * 2}
    uncapped = 0
    for scene, milli, receipt_g, reason, grams_before, grams, ref in restated:
        assert ref == CORRECTION
        assert grams_before == receipt_g
        if reason == "":
            km = Decimal(str(milli)) / 1000
            assert receipt_g == int(km * per_km[str(scene)][0])
            assert grams == int(km * per_km[str(scene)][1])
            uncapped += 1
    assert uncapped > 50
    changed = sum(int(str(g)) - int(str(b)) for *_, b, g, _ in restated)
    assert changed == done["delta_g"]
    # Posted per account and platform: the citizens' own grams, the pool's certified ones.
    posted = _rows(
        app,
        "select a.kind, sum(p.posted_g), sum(p.delta_g), count(p.transfer_id) "
        "from restatement_postings p join accounts a on a.id = p.account_id group by a.kind",
    )
    by_kind = {str(kind): (int(str(g)), int(str(d)), int(str(n))) for kind, g, d, n in posted}
    assert set(by_kind) == {"citizen", "pool"}
    assert sum(g for g, _, _ in by_kind.values()) == done["posted_g"] == done["delta_g"]
    transfers = _rows(app, "select count(*), sum(amount) from transfers where kind = 'restated'")
    assert transfers[0][0] == sum(n for _, _, n in by_kind.values())
    assert transfers[0][1] == -done["posted_g"]
    # Every credit of the corrected version is now computed by the correction.
    assert _rows(
        app,
        f"select count(*) from records r where r.methodology = '{CORRECTED}' "
        "and r.status = 'credited' and not exists (select 1 from restated_credits x "
        f"where x.record_seq = r.seq and x.methodology = '{CORRECTION}')",
    ) == [(0,)]
    assert ledger.verify(app) == []

    again = restatement.restate(app, SZ, "1.0.1", "ops", dry_run=False).as_dict()
    assert (again["credits"], again["recalculated"], again["posted_g"]) == (0, 0, 0)
    assert (
        _rows(app, "select count(*), sum(amount) from transfers where kind = 'restated'")
        == transfers
    )
    assert [(r["credits"], r["posted_g"]) for r in restatement.restatements(app)] == [
        (done["credits"], done["posted_g"])
    ]

    # A forged restated amount, and a forged posting: verify names both.
    forge(
        app.engine,
        "update restated_credits set grams = grams + 1000 "
        "where id = (select min(id) from restated_credits where grams <> grams_before)",
    )
    found = {v.check: v for v in ledger.verify(app)}
    assert set(found) == {"credit_misrestated"}
    # The credit no longer settles to its grams, nor sums to its posting.
    assert {e.split(":")[0] for e in found["credit_misrestated"].examples} == {"record", "posting"}
    forge(
        app.engine,
        "update restated_credits set grams = grams - 1000 "
        "where id = (select min(id) from restated_credits where grams <> grams_before)",
        "update restatement_postings set delta_g = delta_g - 1, posted_g = posted_g - 1 "
        "where id = (select min(id) from restatement_postings where posted_g < 0)",
    )
    found = {v.check: v for v in ledger.verify(app)}
    assert "credit_misrestated" in found
    assert any(e.startswith("posting:") for e in found["credit_misrestated"].examples)


def test_the_version_must_supersede_one(app: App) -> None:
    use(app, FULL)
    with pytest.raises(InputError, match="supersedes no version"):
        restatement.restate(app, "cn-common", "1.0.0", "ops", dry_run=True)
    with pytest.raises(NotFoundError):
        restatement.restate(app, SZ, "9.9.9", "ops", dry_run=True)


def _metro(n: int, day: int, km: str, phone: str = "13800138000") -> dict[str, object]:
    return trip(
        f"m-{phone[-4:]}-{day}-{n}",
        subject=phone,
        scene="metro",
        region="440300",
        distance_km=km,
        start=f"2026-10-{day:02d}T0{n}:00:00+08:00",
        end=f"2026-10-{day:02d}T0{n}:30:00+08:00",
    )


def test_caps_are_applied_again_and_later_receipts_count_restated_grams(app: App) -> None:
    """Six rides on one day: the sixth is over the 5-rides cap (0 g) under both versions; a
    ride received after the restatement is settled against the restated grams."""
    admin.add_platform(app, "amap")
    ingest.ingest_records(app, "amap", [_metro(n, 1, "10") for n in range(1, 7)])
    assert _rows(app, "select reduction_g from records order by seq") == [(468,)] * 5 + [(0,)]
    use(app, FULL)
    done = restatement.restate(app, SZ, "1.0.1", "ops", dry_run=False).as_dict()
    assert (done["credits"], done["delta_g"], done["recalculated"]) == (5, -5, 6)
    who = queries.pseudonym_of(app, "13800138000")
    assert wallet.holdings(app, who).balance_g == 5 * 467
    # A later ride of another day, under 1.0.1 from the start.
    _, receipts = ingest.ingest_records(app, "amap", [_metro(1, 2, "10")])
    assert receipts.column("reduction_g").to_pylist() == [467]
    assert receipts.column("methodology").to_pylist() == [CORRECTION]
    assert ledger.verify(app) == []


def _capped(catalogue: Catalogue, ref: str, max_g: int) -> Methodology:
    m = catalogue.get(ref)
    rule = dataclasses.replace(m.scenes["recycling"], caps=(Cap("day", max_g=max_g),))
    return dataclasses.replace(m, scenes={**m.scenes, "recycling": rule})


def test_a_certified_credit_is_adjusted_through_its_batchs_buffer(app: App) -> None:
    """cn-common@1.0.1 (a test's correction) lowers the day's cap of recycling from 20 kg to
    15 kg of CO2e: 100 certified credits of 20 kg, in two units, each lose 5 kg, drawn from
    the batch's buffer unit; the units sold stay as issued."""
    old = _capped(FULL, "cn-common@1.0.0", 20_000)
    old = dataclasses.replace(old, status=MethodologyStatus.SUPERSEDED)
    new = dataclasses.replace(
        _capped(FULL, "cn-common@1.0.0", 15_000), version="1.0.1", supersedes="1.0.0",
        retroactive=True,
    )  # fmt: skip
    others = [m for m in FULL.methodologies if m.id != "cn-common"]
    use(app, Catalogue([*others, old], FULL.factors, FULL.regions))
    admin.add_platform(app, "amap")
    phones = [f"1380000{c:04d}" for c in range(100)]
    records = [
        event(f"e-{c}", subject=p, quantity="100", start="2026-10-03T10:00:00+08:00")
        for c, p in enumerate(phones)
    ]
    ingest.ingest_records(app, "amap", records)
    wallet.add_programme(app, "green", "Green", Decimal("10"), starts_at=NOW - timedelta(90),
                         certifies=True)  # fmt: skip
    wallet.run_jobs(app)
    done = market.certify(app, "2026-10", "cn-common@1.0.0", "51", "c-1", "ops",
                          programme="green").result  # fmt: skip
    assert (done["credits"], done["batch"]["units"], done["batch"]["buffer_units"]) == (100, 2, 1)
    use(app, Catalogue([*others, old, new], FULL.factors, FULL.regions))
    restated = restatement.restate(app, "cn-common", "1.0.1", "ops", dry_run=False).as_dict()
    assert (restated["credits"], restated["delta_g"], restated["posted_g"]) == (
        100, -500_000, -500_000,
    )  # fmt: skip
    buffer = _rows(
        app,
        "select b.balance_g from unit_batches u join balances b on b.account_id = "
        "u.buffer_account_id",
    )
    assert buffer == [(500_000,)]
    assert all(wallet.holdings(app, queries.pseudonym_of(app, p)).balance_g == 0 for p in phones)
    assert ledger.verify(app) == []


def test_a_citizens_scene_with_a_held_record_waits(app: App) -> None:
    """A held record of the corrected version: its citizen's scene is left for a later run,
    which restates it once the record is decided."""
    admin.add_platform(app, "amap")
    ingest.ingest_records(app, "amap", [_metro(1, 1, "10"), _metro(1, 2, "10", "13900139000")])
    seq = _rows(app, "select max(seq) from records")[0][0]
    forge(app.engine, f"update records set status = 'held' where seq = {seq}")
    use(app, FULL)
    first = restatement.restate(app, SZ, "1.0.1", "ops", dry_run=False).as_dict()
    assert (first["credits"], first["waiting"], first["finished"]) == (1, 1, False)
    assert restatement.restatements(app)[0]["finished_at"] is None
    forge(app.engine, f"update records set status = 'credited' where seq = {seq}")
    second = restatement.restate(app, SZ, "1.0.1", "ops", dry_run=False).as_dict()
    assert (second["credits"], second["waiting"], second["finished"]) == (1, 0, True)
    assert restatement.restatements(app)[0]["credits"] == 2


def test_a_ride_received_after_a_restatement_counts_the_restated_grams(app: App) -> None:
    """Metro capped at 1 000 g a day: two 10 km rides credit 468 g each under 1.0.0, 467 g
    restated; a third ride of the same day, received after, gets what remains under the
    restated grams (1 000 − 934 = 66 g, not 64), and verify judges each receipt by the grams
    that stood when it was received."""

    def capped(m: Methodology) -> Methodology:
        rule = dataclasses.replace(m.scenes["metro"], caps=(Cap("day", max_g=1_000),))
        return dataclasses.replace(m, scenes={**m.scenes, "metro": rule})

    others = [m for m in FULL.methodologies if m.id != SZ]
    old, new = capped(FULL.get(CORRECTED)), capped(FULL.get(CORRECTION))
    use(app, Catalogue([*others, old], FULL.factors, FULL.regions))
    admin.add_platform(app, "amap")
    ingest.ingest_records(app, "amap", [_metro(1, 1, "10"), _metro(2, 1, "10")])
    use(app, Catalogue([*others, old, new], FULL.factors, FULL.regions))
    assert restatement.restate(app, SZ, "1.0.1", "ops", dry_run=False).delta_g == -2
    _, receipts = ingest.ingest_records(app, "amap", [_metro(3, 1, "10")])
    assert receipts.column("reduction_g").to_pylist() == [66]
    assert receipts.column("reason").to_pylist() == ["capped"]
    assert ledger.verify(app) == []
