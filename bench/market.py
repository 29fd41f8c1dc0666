"""Benchmark: certifying a month of credits into a batch, and proving one credit of it.

    python -m bench.market [--citizens 20000] [--days 25] [--proofs 50]

Builds an SQLite database (in a temporary folder) with one member platform whose citizens each
recycle 100 kg of paper on `--days` days of October 2026 (one credit of 20 000 g a day, the
day's cap), ingested from a JSON Lines file with `ingest_files`; an exchange programme whose
terms let it certify (`--certifies`), and `jobs run` awarding its points, so that every citizen
takes part. Then it measures, in the same run:

- `baseline`: one `INSERT … SELECT` copying the month's credited records (seq, citizen, grams)
  of the methodology and region into a table: every credit read and written once, nothing else;
- `certify`: `market.certify` of the month: the eligible credits, the citizens' balances, the
  grams moved into the pool (one transfer per citizen), each credit recorded, the batch's
  leaves and Merkle root, its units, buffer and blocks; one transaction;
- `proof`: `registry.proofs` of `--proofs` random credits of the batch (p50, p99 seconds), as
  the citizen's API route answers them;
- `verify`: the market's `ledger verify` checks over the result.

Prints the figures and writes them to `bench/out/market-<citizens>x<days>.json`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from sqlalchemy import text

from puhui.adapters.sql import market_audit
from puhui.bootstrap import bootstrap
from puhui.config import Settings
from puhui.service import admin, ingest, market, registry, wallet

PERIOD = "2026-10"
METHODOLOGY = "cn-common@1.0.0"
REGION = "51"
NOW = datetime(2026, 11, 20, tzinfo=UTC)


def _records(path: Path, citizens: int, days: int) -> int:
    with path.open("w", encoding="utf-8") as f:
        for day in range(1, days + 1):
            for c in range(citizens):
                f.write(
                    json.dumps(
                        {
                            "platform": "aihuishou",
                            "record_id": f"{c}-{day}",
                            "subject": f"139{c:08d}",
                            "scene": "recycling",
                            "region": "510100",
                            "start": f"2026-10-{day:02d}T10:00:00+08:00",
                            "quantity": "100",
                            "material": "paper",
                        }
                    )
                    + "\n"
                )
    return citizens * days


def run(citizens: int, days: int, proofs: int, out: Path) -> dict[str, object]:
    """Build, certify, prove and verify; returns the figures."""
    with tempfile.TemporaryDirectory(prefix="puhui-market-") as tmp:
        folder = Path(tmp)
        app = bootstrap(
            Settings(f"sqlite:///{folder / 'puhui.db'}", folder / "puhui.key"), clock=lambda: NOW
        )
        admin.init(app)
        admin.add_platform(app, "aihuishou")
        wallet.add_programme(
            app,
            "green",
            "Green",
            Decimal(10),
            starts_at=datetime(2026, 9, 1, tzinfo=UTC),
            certifies=True,
        )
        records = _records(folder / "records.jsonl", citizens, days)
        started = time.perf_counter()
        ingest.ingest_files(app, "aihuishou", [folder / "records.jsonl"])
        ingest_s = time.perf_counter() - started
        started = time.perf_counter()
        wallet.run_jobs(app)
        jobs_s = time.perf_counter() - started

        started = time.perf_counter()
        with app.engine.begin() as conn:
            conn.execute(text("create table bench_copy (seq bigint, subject_id int, grams bigint)"))
            copied = conn.execute(
                text(
                    "insert into bench_copy select seq, subject_id, reduction_g from records "
                    "where status = 'credited' and reduction_g > 0 and methodology = :m "
                    "and region like :r"
                ),
                {"m": METHODOLOGY, "r": REGION + "%"},
            ).rowcount
        baseline_s = time.perf_counter() - started

        started = time.perf_counter()
        done = market.certify(app, PERIOD, METHODOLOGY, REGION, "bench", "bench", programme="green")
        certify_s = time.perf_counter() - started
        batch = done.result["batch"]
        assert batch is not None, done.result

        with app.engine.connect() as conn:
            rows = conn.execute(
                text(
                    "select x.id, s.pseudonym from batch_credits c "
                    "join transfers x on x.record_seq = c.record_seq and x.kind = 'credit' "
                    "join records r on r.seq = c.record_seq join subjects s on s.id = r.subject_id"
                )
            ).all()
        rng = random.Random(1)
        chosen = rng.sample(rows, min(proofs, len(rows)))
        times = []
        for entry, pseudonym in chosen:
            started = time.perf_counter()
            found = registry.proofs(app, pseudonym, int(entry))
            times.append(time.perf_counter() - started)
            assert registry.check_proof(found[0]) is None
        started = time.perf_counter()
        broken = app.audit().breaking([*market_audit.QUERIES, "batch_root_mismatch"])
        verify_s = time.perf_counter() - started
        assert not any(broken.values()), broken
        app.close()
    times.sort()
    figures: dict[str, object] = {
        "citizens": citizens,
        "records": records,
        "credits_certified": done.result["credits"],
        "units": batch["units"],
        "leaves": batch["leaves"],
        "ingest_s": round(ingest_s, 1),
        "jobs_s": round(jobs_s, 1),
        "baseline_rows": copied,
        "baseline_s": round(baseline_s, 2),
        "certify_s": round(certify_s, 2),
        "certify_per_credit_us": round(certify_s / done.result["credits"] * 1e6, 1),
        "certify_x_baseline": round(certify_s / baseline_s, 1),
        "proof_p50_s": round(statistics.median(times), 4),
        "proof_p99_s": round(times[min(len(times) - 1, int(len(times) * 0.99))], 4),
        "verify_market_s": round(verify_s, 2),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / f"market-{citizens}x{days}.json").write_text(json.dumps(figures, indent=2) + "\n")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--citizens", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=25)
    parser.add_argument("--proofs", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench/out"))
    args = parser.parse_args(argv)
    figures = run(args.citizens, args.days, args.proofs, args.out)
    for name, value in figures.items():
        print(f"{name:>24}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
