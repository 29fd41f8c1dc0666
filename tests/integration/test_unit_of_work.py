"""The unit of work of intake: one transaction, rolled back on leaving unless committed."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from puhui.adapters.sql import tables as t
from puhui.bootstrap import App
from puhui.service import admin
from tests.conftest import NOW


def batches(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t.batches)).scalar_one())


def test_what_a_unit_of_work_writes_is_kept_only_when_committed(app: App) -> None:
    """A batch opened and committed is there; one opened and left is not."""
    admin.add_platform(app, "amap")
    with app.intake() as uow:
        platform_id = uow.store.platform_id("amap")
        uow.store.new_batch(platform_id, "kept.jsonl", NOW)
        uow.commit()
    with app.intake() as uow:
        uow.store.new_batch(platform_id, "left.jsonl", NOW)
    assert batches(app) == 1


def test_a_unit_of_work_that_fails_keeps_nothing(app: App) -> None:
    """An error inside the unit of work rolls back what it wrote, and is raised."""
    admin.add_platform(app, "amap")

    def fail_half_way() -> None:
        with app.intake() as uow:
            uow.store.new_batch(uow.store.platform_id("amap"), "failed.jsonl", NOW)
            raise RuntimeError("half way")

    with pytest.raises(RuntimeError, match="half way"):
        fail_half_way()
    assert batches(app) == 0
