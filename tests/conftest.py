"""Shared fixtures: an initialised application on SQLite and on a throwaway PostgreSQL."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from puhui.bootstrap import App, bootstrap
from puhui.config import Settings
from puhui.service import admin
from tests.pgcluster import PgCluster

# Records in the tests happen in October 2026; the platform receives them on 1 November.
NOW = datetime(2026, 11, 1, tzinfo=UTC)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL cluster per test process, started on first use."""
    with PgCluster() as cluster:
        yield cluster


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: an SQLite file, then a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'puhui.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return cluster.create_database("t_" + uuid.uuid4().hex[:16])


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def new_database(request: pytest.FixtureRequest) -> Callable[[Path], str]:
    """Make a fresh, empty database for each example of a property test: an SQLite file in a
    given folder, or a new PostgreSQL database."""
    if request.param == "sqlite":
        return lambda folder: f"sqlite:///{folder / 'puhui.db'}"
    cluster: PgCluster = request.getfixturevalue("pg_cluster")
    return lambda _folder: cluster.create_database("e_" + uuid.uuid4().hex[:16])


@pytest.fixture
def app(database_url: str, tmp_path: Path) -> Iterator[App]:
    """An initialised application whose clock stands still at NOW."""
    instance = bootstrap(Settings(database_url, tmp_path / "subject.key"), clock=lambda: NOW)
    admin.init(instance)
    yield instance
    instance.close()
