"""Schema migrations of an adapter's own tables (Alembic; one chain per adapter).

The node's tables are migrated by ``account.migrate`` (``tix db upgrade``); an adapter's tables
(``mail*``, ``webhook*``) by its own chain, in the same database, with its own version table (see
``adapters.hosting.schema``). ``prepare`` runs when the adapter starts (``tix adapter <name>
serve``) and from ``tix adapter <name> db upgrade``:

- no adapter table yet: they are created from the models and stamped at head;
- a version table: upgraded to head;
- the tables but no version table (made by ``create_all`` before the adapters had migrations):
  stamped at head when they match the models, else at the first revision (the schema the
  adapter was released with), then upgraded.

``python -m adapters.hosting.migrate email revision -m MESSAGE`` writes the next revision.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, pool
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from adapters.hosting.schema import AdapterSchema

SCRIPTS = Path(__file__).resolve().parent / "migrations"


class SchemaOutOfDate(RuntimeError):
    """The adapter's tables are not at the revision this code expects."""


def object_filter(schema: AdapterSchema) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """Alembic's ``include_object``: only the adapter's tables, columns, indexes, constraints."""
    tables = schema.tables()

    def include(obj: Any, name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
        if type_ == "table":
            return name in tables
        return getattr(getattr(obj, "table", None), "name", None) in tables

    return include


def alembic_config(schema: AdapterSchema, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("path_separator", "os")
    config.set_main_option("version_locations", str(schema.versions))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["schema"] = schema
    return config


def head(schema: AdapterSchema) -> str:
    script = ScriptDirectory.from_config(alembic_config(schema, "sqlite://"))
    revision = script.get_current_head()
    if revision is None:
        raise RuntimeError(f"no migration scripts in {schema.versions}")
    return revision


def current(schema: AdapterSchema, engine: Engine) -> str | None:
    """The revision of the adapter's tables, or None when there is no version table."""
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"version_table": schema.version_table})
        return context.get_current_revision()


def differences(schema: AdapterSchema, url: str) -> list[Any]:
    """What autogenerate finds between the adapter's tables at ``url`` and its models."""
    schema.load_models()
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": object_filter(schema)}
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def upgrade(schema: AdapterSchema, url: str, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade the adapter's tables at ``url``; return their revision before and after."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        config = alembic_config(schema, url)
        before = current(schema, engine)
        if before is None and _has_tables(schema, engine):
            before = _stamp_legacy(schema, url)
        command.upgrade(config, revision)
        after = current(schema, engine)
    finally:
        engine.dispose()
    return before, after or ""


def prepare(schema: AdapterSchema, url: str) -> tuple[str | None, str]:
    """Bring the adapter's tables to head: created and stamped if new, else upgraded."""
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        tables = set(inspect(engine).get_table_names())
        if schema.version_table not in tables and not _has_tables(schema, engine):
            schema.load_models()
            wanted = [SQLModel.metadata.tables[name] for name in sorted(schema.tables())]
            SQLModel.metadata.create_all(engine, tables=wanted)
            command.stamp(alembic_config(schema, url), "head")
            return None, head(schema)
    finally:
        engine.dispose()
    return upgrade(schema, url)


def check_current(schema: AdapterSchema, engine: Engine) -> None:
    """Raise ``SchemaOutOfDate`` unless the adapter's tables are at the code's head."""
    revision = current(schema, engine)
    expected = head(schema)
    if revision != expected:
        raise SchemaOutOfDate(
            f"the {schema.name} adapter's tables are at revision {revision or 'none'}, this "
            f"code needs {expected}: run `tix adapter {schema.name} db upgrade` (back up first)"
        )


def _has_tables(schema: AdapterSchema, engine: Engine) -> bool:
    return bool(set(inspect(engine).get_table_names()) & schema.tables())


def _stamp_legacy(schema: AdapterSchema, url: str) -> str:
    """Stamp tables made by ``create_all``: head if they match the models, else the first."""
    config = alembic_config(schema, url)
    command.stamp(config, "head")
    if not differences(schema, url):
        return head(schema)
    command.stamp(config, schema.first_revision, purge=True)
    return schema.first_revision


def make_revision(schema: AdapterSchema, message: str) -> Path | None:
    """Write the adapter's next revision: what its models add to the newest one (None if none)."""
    with tempfile.TemporaryDirectory(prefix=f"tix-{schema.name}-revision-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'head.db'}"
        command.upgrade(alembic_config(schema, url), "head")
        if not differences(schema, url):
            return None
        number = int(head(schema).rpartition("_")[2]) + 1
        script = command.revision(
            alembic_config(schema, url),
            message=message,
            autogenerate=True,
            rev_id=f"{schema.name}_{number:04d}",
            version_path=str(schema.versions),
        )
    assert not isinstance(script, list) and script is not None
    path = Path(script.path)
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        subprocess.run([str(ruff), "format", "-q", str(path)], check=False)  # noqa: S603
        subprocess.run([str(ruff), "check", "--fix", "-q", str(path)], check=False)  # noqa: S603
    return path


def main(argv: list[str] | None = None) -> int:
    """``python -m adapters.hosting.migrate ADAPTER revision -m MESSAGE``."""
    from adapters.email import SCHEMA as EMAIL
    from adapters.webhook import SCHEMA as WEBHOOK

    schemas = {s.name: s for s in (EMAIL, WEBHOOK)}
    parser = argparse.ArgumentParser(prog="python -m adapters.hosting.migrate")
    parser.add_argument("adapter", choices=sorted(schemas))
    sub = parser.add_subparsers(dest="command", required=True)
    revision = sub.add_parser("revision", help="write the next revision from the models")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    path = make_revision(schemas[args.adapter], args.message)
    print(path if path else "the models match the newest revision: nothing to write")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
