"""Alembic environment shared by the adapters' chains (run through ``adapters.hosting.migrate``).

The adapter whose chain runs is ``config.attributes["schema"]`` (an ``AdapterSchema``): its own
version table, and only its own tables compared or migrated. SQLite gets batch mode.
"""

from __future__ import annotations

from typing import Any

from alembic import context
from sqlalchemy import create_engine, pool
from sqlmodel import SQLModel

from account.migrate import process_revision_directives, render_item
from adapters.hosting.migrate import object_filter
from adapters.hosting.schema import AdapterSchema

config = context.config
schema: AdapterSchema = config.attributes["schema"]
schema.load_models()


def _configure(database_url: str, **kwargs: Any) -> None:
    context.configure(
        target_metadata=SQLModel.metadata,
        include_object=object_filter(schema),
        version_table=schema.version_table,
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
