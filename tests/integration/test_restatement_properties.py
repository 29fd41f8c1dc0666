"""Property of restatement on SQLite and PostgreSQL: records received under a version A and
restated to its correction B leave every citizen the balance they would hold had B computed
them from the start, for any caps of A and B (counts and grams, per day and month).

Each example uses one new database and two sets of citizens with the same trips: the first set's
are received under A (B not shipped yet), the second's under B (which corrects A); then A's
credits are restated. Caps are per citizen, so the two sets never meet.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from puhui.adapters.methodology_files import load_catalogue
from puhui.bootstrap import bootstrap
from puhui.config import Settings
from puhui.domain.methodology import Cap, Catalogue, MethodologyStatus
from puhui.service import admin, ingest, ledger, queries, restatement, wallet
from tests.builders import trip

NOW = datetime(2026, 11, 20, tzinfo=UTC)
FULL = load_catalogue()
SZ = "sz-public-transit"

caps = st.lists(
    st.builds(
        Cap,
        period=st.sampled_from(["day", "month"]),
        max_g=st.none() | st.integers(0, 2_000),
        max_count=st.none() | st.integers(0, 4),
    ),
    max_size=2,
    unique_by=lambda c: c.period,
)
# (citizen, day of October, hour, km)
trips = st.lists(
    st.tuples(
        st.integers(0, 1),
        st.integers(1, 3),
        st.integers(0, 22),
        st.decimals("0.5", "40", places=1),
    ),
    min_size=1,
    max_size=14,
    unique_by=lambda t: (t[0], t[1], t[2]),
)


def catalogues(a_caps: list[Cap], b_caps: list[Cap]) -> tuple[Catalogue, Catalogue]:
    """The shipped catalogue before and after the correction, with these metro caps."""

    def capped(ref: str, given: list[Cap]) -> object:
        m = FULL.get(ref)
        rule = dataclasses.replace(m.scenes["metro"], caps=tuple(given))
        return dataclasses.replace(m, scenes={**m.scenes, "metro": rule})

    a = capped(f"{SZ}@1.0.0", a_caps)
    b = capped(f"{SZ}@1.0.1", b_caps)
    others = [m for m in FULL.methodologies if m.id != SZ]
    before = dataclasses.replace(a, status=MethodologyStatus.TRIAL)  # type: ignore[type-var]
    return (
        Catalogue([*others, before], FULL.factors, FULL.regions),  # type: ignore[list-item]
        Catalogue([*others, a, b], FULL.factors, FULL.regions),  # type: ignore[list-item]
    )


def phone(world: int, citizen: int) -> str:
    return f"13{world}0000{citizen:04d}"


def rides(world: int, given: list[tuple[int, int, int, object]]) -> list[dict[str, object]]:
    return [
        trip(
            f"w{world}-{n}",
            subject=phone(world, citizen),
            scene="metro",
            region="440300",
            distance_km=str(km),
            start=f"2026-10-{day:02d}T{hour:02d}:00:00+08:00",
            end=f"2026-10-{day:02d}T{hour:02d}:40:00+08:00",
        )
        for n, (citizen, day, hour, km) in enumerate(given)
    ]


@pytest.mark.parametrize(
    "backend", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_restating_gives_the_balances_of_computing_with_the_correction_from_the_start(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        make: Callable[[], str] = lambda: f"sqlite:///{tmp_path / uuid.uuid4().hex}.db"  # noqa: E731
    else:
        cluster = request.getfixturevalue("pg_cluster")
        make = lambda: cluster.create_database("r_" + uuid.uuid4().hex[:16])  # noqa: E731

    @settings(
        max_examples=40 if backend == "sqlite" else 10,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(a_caps=caps, b_caps=caps, given_trips=trips)
    def check(
        a_caps: list[Cap], b_caps: list[Cap], given_trips: list[tuple[int, int, int, object]]
    ) -> None:
        before, after = catalogues(a_caps, b_caps)
        app = bootstrap(Settings(make(), tmp_path / "subject.key"), clock=lambda: NOW)
        try:
            admin.init(app)
            admin.add_platform(app, "amap")
            app.__dict__["catalogue"] = before
            ingest.ingest_records(app, "amap", rides(0, given_trips))
            app.__dict__["catalogue"] = after
            ingest.ingest_records(app, "amap", rides(1, given_trips))
            dry = restatement.restate(app, SZ, "1.0.1", "ops", dry_run=True).as_dict()
            done = restatement.restate(app, SZ, "1.0.1", "ops", dry_run=False).as_dict()
            assert dry["posted_g"] == done["posted_g"]
            assert dry["delta_g"] == done["delta_g"]
            for citizen in {c for c, *_ in given_trips}:
                restated, direct = (
                    wallet.holdings(app, queries.pseudonym_of(app, phone(w, citizen))).balance_g
                    for w in (0, 1)
                )
                assert restated == direct, (citizen, a_caps, b_caps)
            again = restatement.restate(app, SZ, "1.0.1", "ops", dry_run=False).as_dict()
            assert (again["credits"], again["posted_g"]) == (0, 0)
            assert ledger.verify(app) == []
        finally:
            app.close()

    check()
