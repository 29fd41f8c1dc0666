"""Small chunks are counted for the statistics in Python, large ones in Arrow: the same
counts, members and first participations either way."""

from __future__ import annotations

import random
from collections import Counter
from datetime import date, timedelta

import pyarrow as pa

from puhui.adapters.sql import tallies
from puhui.domain import china_time

DAY = china_time.DAY_MS


def _chunk(seed: int, n: int) -> tuple[pa.Table, pa.Table]:
    rnd = random.Random(seed)
    statuses = ["credited", "credited", "credited", "duplicate", "rejected"]
    rows = []
    for _ in range(n):
        status = rnd.choice(statuses)
        reason = {"credited": rnd.choice(["", "", "capped_daily"]), "duplicate": "duplicate_ref"}
        rows.append(
            {
                "status": status,
                "reason": reason.get(status, "too_fast") if rnd.random() > 0.1 else None,
                "reduction_g": rnd.randrange(0, 900) if status == "credited" else 0,
                "subject_id": rnd.randrange(1, 40),
                "region": rnd.choice(["110000", "110105", "440300", "310000"]),
                "scene": rnd.choice(["bus", "metro", "recycling"]),
                # Around the turn of a month, China time.
                "start_ms": china_time.day_start_ms(date(2026, 10, 30)) + rnd.randrange(4 * DAY),
            }
        )
    usage = [
        {
            "subject_id": rnd.randrange(1, 40),
            "scene": "bus",
            "day": date(2026, 10, 29) + timedelta(days=rnd.randrange(4)),
            "g": 1,
            "n": 1,
        }
        for _ in range(30)
    ]
    stored = pa.Table.from_pylist(
        rows,
        schema=pa.schema(
            [
                ("status", pa.string()),
                ("reason", pa.string()),
                ("reduction_g", pa.int64()),
                ("subject_id", pa.int64()),
                ("region", pa.string()),
                ("scene", pa.string()),
                ("start_ms", pa.int64()),
            ]
        ),
    )
    usage_table = pa.Table.from_pylist(
        usage,
        schema=pa.schema(
            [
                ("subject_id", pa.int64()),
                ("scene", pa.string()),
                ("day", pa.date32()),
                ("g", pa.int64()),
                ("n", pa.int64()),
            ]
        ),
    )
    return stored, usage_table


def test_python_and_arrow_count_a_chunk_alike() -> None:
    for seed in range(20):
        stored, usage = _chunk(seed, random.Random(seed).randrange(0, 400))
        by_python = tallies._counted_in_python(7, stored, usage)
        by_arrow = tallies._counted_in_arrow(7, stored, usage)
        assert by_python[0] == by_arrow[0]
        assert by_python[1] == by_arrow[1]
        assert Counter(by_python[2]) == Counter(by_arrow[2])
        if stored.num_rows:
            assert by_python[0], "something was counted"
