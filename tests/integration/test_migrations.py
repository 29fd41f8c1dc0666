"""The Alembic history builds exactly the schema the code declares, on both databases."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from puhui.adapters.sql import migrate
from puhui.adapters.sql.tables import metadata
from puhui.bootstrap import App


def test_the_migrated_schema_is_the_declared_schema(app: App) -> None:
    """After `init` (every migration applied) autogenerate finds nothing to change."""
    with app.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        differences = compare_metadata(context, metadata)
    assert differences == []


def test_init_is_at_the_head_revision(app: App) -> None:
    assert migrate.current_revision(app.engine) == migrate.head_revision()
