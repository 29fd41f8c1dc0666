"""Relational storage: tables, engines, migrations and the repositories built on them."""
