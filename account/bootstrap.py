"""Building a node from its settings: key file, database, identity, transport, app."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.engine import Engine
from sqlmodel import Session

from account import migrate
from account.config import Settings, load_secret
from account.context import Identity, NodeContext
from account.db import create_tables, make_engine
from account.observability.transport import ObservedTransport
from account.users import service as user_service
from exchange.signing import generate_key, load_key_file, write_key_file
from exchange.transport import Transport


def ensure_key(path: Path) -> bool:
    """Create the account's Ed25519 key file (0600) if there is none; return whether it did."""
    if path.exists():
        return False
    write_key_file(path, generate_key())
    return True


def init_node(settings: Settings, *, admin: str, password: str) -> Identity:
    """Create the data directory, key, tables and first admin; safe to run twice."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_key(settings.key_path)
    engine = make_engine(settings.db_url)  # (makes a SQLite file's directory)
    migrate.prepare(settings.db_url)  # new: every table, stamped at head; else upgraded
    create_tables(engine)  # tables of other layers, outside the node's migrations
    with Session(engine) as session:
        user_service.ensure_admin(session=session, username=admin, password=password)
        session.commit()
    load_secret(settings)
    engine.dispose()
    return load_identity(settings)


def load_identity(settings: Settings) -> Identity:
    return Identity(
        account_id=settings.account_id,
        label=settings.label,
        key=load_key_file(settings.key_path),
    )


def build_context(settings: Settings, engine: Engine | None = None) -> NodeContext:
    """The node context of an initialised node (``tix node init`` ran before)."""
    own = engine is None
    engine = engine or make_engine(settings.db_url)
    try:
        migrate.check_current(engine)
    except migrate.SchemaOutOfDate:
        if own:  # the caller exits; leave no pooled connection behind (PostgreSQL's open)
            engine.dispose()
        raise
    create_tables(engine)
    return NodeContext(
        settings=settings,
        engine=engine,
        identity=load_identity(settings),
        secret=load_secret(settings),
    )


def build_transport(settings: Settings, broker: object | None = None) -> Transport:
    """The transport the settings ask for; ``broker`` is the shared in-process broker, if any."""
    if settings.transport == "inprocess":
        from exchange.inprocess import InProcessBroker, InProcessTransport

        if not isinstance(broker, InProcessBroker):
            raise ValueError("the in-process transport needs a broker shared by the nodes")
        return ObservedTransport(InProcessTransport(broker))
    from exchange.amqp import AmqpTransport
    from exchange.chaos import maybe_wrap  # test-only faults, off unless TIX_FAULT_INJECTION=1

    if settings.broker_identity:
        from exchange.broker_identity import IdentityAmqpTransport

        return ObservedTransport(maybe_wrap(IdentityAmqpTransport(settings.amqp_url)))
    return ObservedTransport(maybe_wrap(AmqpTransport(settings.amqp_url)))
