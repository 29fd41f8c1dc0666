"""Integration test of the throwaway PostgreSQL cluster used by the test suite."""

from __future__ import annotations

import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy

# Make ``tests.pgcluster`` importable even without the project's pytest
# configuration (which puts the repository root on sys.path).
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
if _REPO_ROOT not in sys.path:
    sys.path.insert(0, _REPO_ROOT)

from tests.pgcluster import PgCluster  # noqa: E402


def _select_one(url: str) -> int:
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as conn:
            value = conn.execute(sqlalchemy.text("select 1")).scalar_one()
            assert isinstance(value, int)
            return value
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_cluster_creates_usable_databases() -> None:
    suffix = uuid.uuid4().hex[:8]
    names = [f"pgcluster_a_{suffix}", f"pgcluster_b_{suffix}"]

    with PgCluster() as cluster:
        assert cluster.url.startswith("postgresql+psycopg://")
        urls = [cluster.create_database(name) for name in names]

        assert len(set(urls)) == 2
        for name, url in zip(names, urls, strict=True):
            assert url.endswith("/" + name)
            assert _select_one(url) == 1
        assert _select_one(cluster.url) == 1

        data_dir = cluster.data_dir

    if data_dir is not None:
        assert not data_dir.exists(), "stop() must remove the cluster's files"
