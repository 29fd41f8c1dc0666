"""Benchmark: restating the credits of a corrected methodology version.

    python -m bench.restate [--citizens 20000] [--days 25]

Builds an SQLite database (in a temporary folder) where one member platform's citizens each
ride Shenzhen's metro once a day on `--days` days of October 2026 (1 to 30 km), received while
the catalogue has `sz-public-transit@1.0.0` (metro 46.8 g/pkm) and not its correction 1.0.1
(46.7 g/pkm). Then, with the shipped catalogue, it measures in the same run:

- `baseline`: one `INSERT … SELECT` copying the version's credited records (seq, citizen,
  grams) into a table: every credit read and written once, nothing else;
- `dry run`: `methodology restate sz-public-transit --to 1.0.1 --dry-run`: the whole
  restatement in one transaction, rolled back;
- `restate`: the restatement, a transaction per 2 000 citizens: every credit settled again
  (caps re-applied), one `restated_credits` row per credit and one `restated` transfer per
  citizen;
- `again`: the same command a second time (it finds nothing to change);
- `verify`: the three `ledger verify` checks that re-derive credits (`calculation_altered`,
  `credit_not_recomputable`, `credit_misrestated`).

Prints the figures and writes them to `bench/out/restate-<citizens>x<days>.json`.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import text

from puhui.adapters.methodology_files import load_catalogue
from puhui.bootstrap import bootstrap
from puhui.config import Settings
from puhui.domain.methodology import Catalogue
from puhui.service import admin, ingest, restatement

NOW = datetime(2026, 11, 20, tzinfo=UTC)
CORRECTED = "sz-public-transit@1.0.0"
T = TypeVar("T")
CHECKS = ["calculation_altered", "credit_not_recomputable", "credit_misrestated"]


def _records(path: Path, citizens: int, days: int) -> int:
    rng = random.Random(7)
    with path.open("w", encoding="utf-8") as f:
        for day in range(1, days + 1):
            for c in range(citizens):
                minutes = rng.randint(10, 50)
                f.write(
                    json.dumps(
                        {
                            "platform": "szmetro",
                            "record_id": f"{c}-{day}",
                            "subject": f"139{c:08d}",
                            "scene": "metro",
                            "region": "440300",
                            "start": f"2026-10-{day:02d}T08:00:00+08:00",
                            "end": f"2026-10-{day:02d}T08:{minutes:02d}:00+08:00",
                            "distance_km": round(rng.uniform(1, 30), 3),
                        }
                    )
                    + "\n"
                )
    return citizens * days


def _timed(step: Callable[[], T]) -> tuple[float, T]:
    started = time.perf_counter()
    result = step()
    return time.perf_counter() - started, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--citizens", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=25)
    args = parser.parse_args(argv)
    full = load_catalogue()
    before = Catalogue(
        [m for m in full.methodologies if m.ref != "sz-public-transit@1.0.1"],
        full.factors,
        full.regions,
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        app = bootstrap(Settings(f"sqlite:///{folder / 'b.db'}", folder / "k.key"), lambda: NOW)
        admin.init(app)
        admin.add_platform(app, "szmetro")
        app.__dict__["catalogue"] = before
        n = _records(folder / "metro.jsonl", args.citizens, args.days)
        ingest_s, _ = _timed(lambda: ingest.ingest_files(app, "szmetro", [folder / "metro.jsonl"]))
        app.__dict__["catalogue"] = full
        with app.engine.begin() as conn:
            baseline_s, _ = _timed(
                lambda: conn.execute(
                    text(
                        "create table bench_copy as select seq, subject_id, reduction_g "
                        f"from records where methodology = '{CORRECTED}' "
                        "and status = 'credited'"
                    )
                )
            )
            credits = conn.execute(text("select count(*) from bench_copy")).scalar_one()
            conn.execute(text("drop table bench_copy"))

        def restate(dry: bool) -> dict[str, Any]:
            return restatement.restate(app, "sz-public-transit", "1.0.1", "bench", dry).as_dict()

        dry_s, dry = _timed(lambda: restate(True))
        run_s, done = _timed(lambda: restate(False))
        again_s, again = _timed(lambda: restate(False))
        verify_s, broken = _timed(lambda: app.audit().breaking(CHECKS))
        app.close()
    assert {k: v for k, v in dry.items() if k not in ("dry_run", "restatement")} == {
        k: v for k, v in done.items() if k not in ("dry_run", "restatement")
    }, "the dry run's figures are not the run's"
    assert again["credits"] == 0, "a second run changed credits"
    assert not any(broken.values()), broken
    figures = {
        "records": n,
        "credits": credits,
        "ingest_s": round(ingest_s, 2),
        "baseline_s": round(baseline_s, 3),
        "dry_run_s": round(dry_s, 2),
        "restate_s": round(run_s, 2),
        "again_s": round(again_s, 2),
        "verify_s": round(verify_s, 2),
        "restate_x_baseline": round(run_s / baseline_s, 1),
        "credits_changed": done["credits"],
        "delta_g": done["delta_g"],
    }
    for name, value in figures.items():
        print(f"{name:>20}: {value}")
    out = Path(__file__).parent / "out"
    out.mkdir(exist_ok=True)
    (out / f"restate-{args.citizens}x{args.days}.json").write_text(
        json.dumps(figures, indent=2), encoding="utf-8"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
