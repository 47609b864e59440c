"""Schema migrations of a node's database (Alembic; scripts in ``account/migrations``).

``tix node init`` and ``tix db upgrade`` bring a database to the newest revision. A database
made before migrations existed (by ``create_all``: it has the node's tables but no
``alembic_version``) is taken to be at ``LEGACY_REVISION``, the schema of the last release
without migrations, and upgraded from there. ``check_current`` refuses to run a node on a
database that is at another revision than the code's, with the command that fixes it.
See docs/migrations.md.
"""

from __future__ import annotations

import argparse
import logging
import re
import subprocess
import sys
import tempfile
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import Column, TypeDecorator, create_engine, inspect, pool, text
from sqlalchemy.engine import Engine
from sqlmodel.sql.sqltypes import AutoString

from account.tickets.search import TRGM_INDEX

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported only where a migration runs or is written: ``tix node serve`` checks the
# revision without it (alembic.runtime.migration alone is about 10 MiB of resident memory).

log = logging.getLogger("tix.migrate")

SCRIPTS = Path(__file__).resolve().parent / "migrations"
LEGACY_REVISION = "0001"
VERSION_TABLE = "alembic_version"


class SchemaOutOfDate(RuntimeError):
    """The database is not at the revision this code expects."""


def alembic_config(url: str) -> Config:
    """An Alembic configuration for the database at ``url`` (no alembic.ini needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(SCRIPTS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


_REVISION = re.compile(r"^(revision|down_revision)\b[^=\n]*=\s*(None|\"[^\"]+\")", re.MULTILINE)


def head() -> str:
    """The newest revision of the scripts: the one no other revises.

    Read from the scripts' ``revision`` / ``down_revision`` lines, as Alembic writes them;
    ``tests/integration/test_migrations.py`` checks it is Alembic's own answer.
    """
    revisions: set[str] = set()
    revised: set[str] = set()
    for path in (SCRIPTS / "versions").glob("*.py"):
        found = dict(_REVISION.findall(path.read_text(encoding="utf-8")))
        if "revision" not in found:
            continue
        revisions.add(found["revision"].strip('"'))
        if found.get("down_revision", "None") != "None":
            revised.add(found["down_revision"].strip('"'))
    heads = revisions - revised
    if len(heads) != 1:
        raise RuntimeError(f"expected one newest migration script in {SCRIPTS}, found {heads}")
    return heads.pop()


def current(engine: Engine) -> str | None:
    """The database's revision, or None when it has no version table."""
    if VERSION_TABLE not in inspect(engine).get_table_names():
        return None
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars().all()  # noqa: S608
    if len(rows) > 1:
        raise RuntimeError(f"the database has several schema revisions: {sorted(rows)}")
    return str(rows[0]) if rows else None


def _is_legacy(engine: Engine) -> bool:
    tables = set(inspect(engine).get_table_names())
    return VERSION_TABLE not in tables and "ticket" in tables


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str]:
    """Upgrade the database at ``url``; return its revision before and after."""
    from alembic import command

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        config = alembic_config(url)
        if _is_legacy(engine):
            command.stamp(config, LEGACY_REVISION)
        before = current(engine)
        command.upgrade(config, revision)
        after = current(engine)
    finally:
        engine.dispose()
    return before, after or ""


def prepare(url: str) -> tuple[str | None, str]:
    """Bring the database at ``url`` to the newest schema for ``tix node init``.

    A new database (none of the node's tables) gets every table straight from the models and
    is stamped at head: Alembic's recipe for building a database from scratch, equivalent to
    running every revision (``tests/integration/test_migrations.py`` checks that head matches
    the models). A database that has the tables is upgraded through the revisions.
    """
    from alembic import command

    from account.db import create_tables

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        tables = set(inspect(engine).get_table_names())
        if VERSION_TABLE not in tables and not tables & node_tables():
            create_tables(engine)
            command.stamp(alembic_config(url), "head")
            return None, head()
    finally:
        engine.dispose()
    return upgrade(url)


def check_current(engine: Engine) -> None:
    """Raise ``SchemaOutOfDate`` unless the database is at the code's head revision.

    A database without a version table passes, with a warning when it has the node's tables
    (made by ``create_all``: by a test, or before migrations existed).
    """
    if _is_legacy(engine):
        log.warning("the database has no schema revision; run `tix db upgrade` to manage it")
        return
    revision = current(engine)
    if revision is None:
        return
    expected = head()
    if revision != expected:
        raise SchemaOutOfDate(
            f"the database is at revision {revision}, this code needs {expected}: "
            "run `tix db upgrade` (back it up first)"
        )


def differences(url: str) -> list[object]:
    """What autogenerate finds between the database at ``url`` and the node's models."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlmodel import SQLModel

    import account.models  # noqa: F401  (registers the node's tables)

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "include_object": include_object}
            )
            return list(compare_metadata(context, SQLModel.metadata))
    finally:
        engine.dispose()


def make_revision(message: str) -> Path | None:
    """Write the next revision: what the models add to the newest one (None if nothing).

    Compares the models with a scratch SQLite database upgraded to head, so no real database
    is needed; the script is formatted and linted with the project's ruff when it is there.
    """
    from alembic import command

    with tempfile.TemporaryDirectory(prefix="tix-revision-") as tmp:
        url = f"sqlite:///{Path(tmp) / 'head.db'}"
        upgrade(url)
        if not differences(url):
            return None
        rev_id = f"{int(head()) + 1:04d}"
        script = command.revision(
            alembic_config(url), message=message, autogenerate=True, rev_id=rev_id
        )
    assert not isinstance(script, list) and script is not None
    path = Path(script.path)
    ruff = Path(sys.executable).with_name("ruff")
    if ruff.exists():
        subprocess.run([str(ruff), "check", "--fix", "-q", str(path)], check=False)  # noqa: S603
        subprocess.run([str(ruff), "format", "-q", str(path)], check=False)  # noqa: S603
    return path


# -- what the env script (account/migrations/env.py) configures Alembic with ---------------------


@cache
def node_tables() -> frozenset[str]:
    """Names of the tables of SQLModel classes defined in ``account`` (all of them imported)."""
    import account.models  # noqa: F401  (registers every node table)

    return tables_defined_in("account")


def tables_defined_in(package: str) -> frozenset[str]:
    """Names of the tables of the SQLModel classes (imported so far) defined under ``package``."""
    from sqlmodel import SQLModel

    names: set[str] = set()
    pending: list[type[Any]] = [SQLModel]
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        table = cls.__dict__.get("__table__")
        if table is not None and cls.__module__.startswith(package + "."):
            names.add(str(table.name))
    return frozenset(names)


def include_object(obj: Any, name: str | None, type_: str, _reflected: bool, _other: Any) -> bool:
    """Only the node's own tables (and their columns, indexes, constraints) are migrated here.

    The ticket search's objects are not metadata: migration 0004 and ``create_all`` make them
    (account/tickets/search.py; tests/integration/test_ticket_search.py checks both).
    """
    if type_ == "index" and name == TRGM_INDEX:
        return False
    if type_ == "table":
        table_name = name
    else:
        table_name = getattr(getattr(obj, "table", None), "name", None)
    return table_name in node_tables()


def render_item(type_: str, obj: Any, _autogen_context: Any) -> str | Literal[False]:
    """Scripts name plain SQLAlchemy types, not SQLModel's wrappers (stable across versions)."""
    if type_ != "type":
        return False
    if isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    if isinstance(obj, TypeDecorator):
        return f"sa.{obj.impl_instance!r}"
    return False


def _server_default(table: str, column: str) -> Any:
    """A DDL default for a NOT NULL column added to a table that may already hold rows."""
    from sqlmodel import SQLModel

    default = SQLModel.metadata.tables[table].c[column].default
    arg = getattr(default, "arg", None)
    if default is None or not getattr(default, "is_scalar", False):
        raise RuntimeError(
            f"{table}.{column} is added NOT NULL without a constant default: existing rows need "
            "a value, so give the column a server_default in the generated script by hand"
        )
    if isinstance(arg, bool):
        return text("true" if arg else "false")  # SQLite 3.23+ and PostgreSQL both take these
    if isinstance(arg, int | float):
        return text(str(arg))
    return str(arg)


def _add_server_defaults(operations: Any) -> None:
    from alembic.operations import ops

    for operation in getattr(operations, "ops", []):
        if isinstance(operation, ops.AddColumnOp):
            column = operation.column
            if not column.nullable and column.server_default is None:
                operation.column = Column(
                    column.name,
                    column.type,
                    nullable=False,
                    server_default=_server_default(operation.table_name, column.name),
                    comment=column.comment,
                )
        else:
            _add_server_defaults(operation)


def process_revision_directives(_context: Any, _revision: Any, directives: list[Any]) -> None:
    """Generated scripts give NOT NULL columns added to existing tables a server default."""
    for script in directives:
        _add_server_defaults(script.upgrade_ops)


def main(argv: list[str] | None = None) -> int:
    """``python -m account.migrate revision -m MESSAGE``: write the next revision."""
    parser = argparse.ArgumentParser(prog="python -m account.migrate")
    sub = parser.add_subparsers(dest="command", required=True)
    revision = sub.add_parser("revision", help="write the next revision from the models")
    revision.add_argument("-m", "--message", required=True)
    args = parser.parse_args(argv)
    path = make_revision(args.message)
    print(path if path else "the models match the newest revision: nothing to write")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
