"""Alembic environment of the node schema (run through ``account.migrate``; see that module).

The target is every table defined under ``account``; tables other layers add to the same
metadata (the e-mail adapter's) are left to them. SQLite gets batch mode (``render_as_batch``),
since it cannot alter most of a table in place.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

from account.migrate import include_object, process_revision_directives, render_item

config = context.config


def _configure(database_url: str, **kwargs: Any) -> None:
    context.configure(
        target_metadata=SQLModel.metadata,
        include_object=include_object,
        render_as_batch=database_url.startswith("sqlite"),
        compare_type=True,
        render_item=render_item,
        process_revision_directives=process_revision_directives,
        **kwargs,
    )


def run_offline() -> None:
    url = str(config.get_main_option("sqlalchemy.url"))
    _configure(url, url=url, literal_binds=True, dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    url = str(config.get_main_option("sqlalchemy.url"))
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(url, connection=conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
