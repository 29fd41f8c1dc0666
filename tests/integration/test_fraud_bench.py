"""The fraud benchmark's harness at a small size: it runs end to end, every planted kind is
there and caught in part, clean traffic is rarely held, and the ledger verifies after it."""

from __future__ import annotations

from pathlib import Path

from bench.fraud import run, table


def test_the_fraud_benchmark_runs_and_measures_every_kind(tmp_path: Path) -> None:
    figures = run(citizens=300, seed=3, out=tmp_path)
    assert figures["ledger_violations"] == []
    kinds = figures["kinds"]
    assert isinstance(kinds, dict)
    assert set(kinds) == {
        "uncorroborated",
        "device_shared",
        "device_hopping",
        "velocity",
        "volume_outlier",
        "burst",
        "repeated_trip",
    }
    for kind, k in kinds.items():
        assert k["records"] > 0, kind
        assert k["recall"] > 0.5, (kind, k)
        assert k["precision"] > 0.5, (kind, k)
    # Every uncorroborated ride waits, then its window ends: rejected.
    assert kinds["uncorroborated"]["recall"] == 1.0
    clean = figures["clean"]
    assert isinstance(clean, dict)
    assert clean["held_share"] < 0.01, clean
    assert clean["waited_then_credited"] > 0
    assert (tmp_path / "fraud-300.json").is_file()
    assert "| uncorroborated |" in table(figures)
