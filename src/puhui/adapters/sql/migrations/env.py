"""Alembic environment: runs puhui's migrations on the connection it is given."""

from __future__ import annotations

from alembic import context

from puhui.adapters.sql.tables import metadata

config = context.config
connection = config.attributes.get("connection")

if connection is None:
    from puhui.adapters.sql.engine import make_engine

    engine = make_engine(config.get_main_option("sqlalchemy.url") or "sqlite:///puhui.db")
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
else:
    context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()
