"""The ``tix`` command: run a node, manage keys and links, inspect dead letters, run the demo."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlmodel import Session, col, select

from account.broker_cli import exchange_app
from account.config import Settings
from account.hub.cli import (
    exchange_serve,
    hub_app,
    link_accept_incoming,
    link_decline_incoming,
    link_inbox,
)

app = typer.Typer(
    help="Tix: a federated ticket exchange for B2B service chains.", no_args_is_help=True
)
node_app = typer.Typer(help="Set up and run an account node.", no_args_is_help=True)
keys_app = typer.Typer(help="Signing keys.", no_args_is_help=True)
link_app = typer.Typer(help="Partnership links.", no_args_is_help=True)
dlq_app = typer.Typer(help="Rejected and dead-lettered messages.", no_args_is_help=True)
outbox_app = typer.Typer(help="Messages waiting to leave this node.", no_args_is_help=True)
db_app = typer.Typer(help="The node's database schema (migrations).", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(keys_app, name="keys")
app.add_typer(link_app, name="link")
app.add_typer(dlq_app, name="dlq")
app.add_typer(outbox_app, name="outbox")
app.add_typer(db_app, name="db")
app.add_typer(exchange_app, name="exchange")  # account/broker_cli.py
app.add_typer(hub_app, name="hub")  # account/hub/cli.py, with the three commands below
exchange_app.command("serve")(exchange_serve)
link_app.command("inbox")(link_inbox)
link_app.command("accept-incoming")(link_accept_incoming)
link_app.command("decline-incoming")(link_decline_incoming)

console = Console()


def _settings() -> Settings:
    return Settings()


@node_app.command("init")
def node_init(
    admin: Annotated[str, typer.Option(help="user name of the first admin")] = "admin",
    password: Annotated[
        str, typer.Option(help="password of the first admin", envvar="TIX_ADMIN_PASSWORD")
    ] = "",
) -> None:
    """Create the database, the account's key pair and the first admin (safe to run twice)."""
    from account.bootstrap import init_node

    if len(password) < 8:
        raise typer.BadParameter("give --password of at least 8 characters")
    settings = _settings()
    identity = init_node(settings, admin=admin, password=password)
    console.print(
        f"node [bold]{identity.account_id}[/] ready: kid {identity.kid}, "
        f"database {settings.db_url.split('@')[-1]}, key {settings.key_path}"
    )


@node_app.command("serve")
def node_serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the node: HTTP API, inbox consumer and outbox relay."""
    import uvicorn

    from account.app import create_app
    from account.bootstrap import build_context, build_transport
    from account.migrate import SchemaOutOfDate
    from account.node import NodeRuntime
    from account.observability import logs, otel

    settings = _settings()
    logs.configure(settings.log_level, settings.log_format)
    otel.configure(
        enabled=settings.otel,
        service_name=f"tix-node-{settings.account_id}",
        account=settings.account_id,
    )
    if settings.transport == "inprocess":
        raise typer.BadParameter(
            "a served node talks to RabbitMQ; the in-process one is for tix demo"
        )
    try:
        ctx = build_context(settings)
    except SchemaOutOfDate as exc:
        console.print(f"[red]cannot serve:[/] {exc}")
        raise typer.Exit(1) from exc
    runtime = NodeRuntime(ctx, build_transport(settings))
    uvicorn.run(  # the app's lifespan flushes OpenTelemetry's spans at the end
        create_app(ctx, runtime), host=host, port=port, log_level="warning", log_config=None
    )


@keys_app.command("generate")
def keys_generate(
    out: Annotated[
        Path | None, typer.Option(help="key file (default: TIX_KEY_FILE or data dir)")
    ] = None,
) -> None:
    """Create an Ed25519 key file (mode 0600) and print its kid and public key."""
    from account.bootstrap import ensure_key
    from exchange.signing import kid_of, load_key_file, public_key_b64

    path = out or _settings().key_path
    created = ensure_key(path)
    key = load_key_file(path)
    state = "created" if created else "exists"
    console.print(
        f"{path} {state}: kid {kid_of(key.public_key())}, public key {public_key_b64(key)}"
    )


@keys_app.command("rotate")
def keys_rotate(
    overlap_seconds: Annotated[
        int,
        typer.Option(min=0, max=30 * 86_400, help="how long partners still accept the old key"),
    ] = 86_400,
) -> None:
    """New key; every partner gets a link.rekey signed with the old one, and the hub's directory
    (with TIX_HUB_URL) a registration signed with it. Restart the node after."""
    from account.hub.cli import move_hub_entry
    from account.keys import RotationError, rotate

    settings = _settings()
    try:
        rotation = rotate(settings, overlap_seconds=overlap_seconds)
    except RotationError as exc:
        console.print(f"[red]cannot rotate:[/] {exc}")
        raise typer.Exit(1) from exc
    console.print(
        f"kid {rotation.old_kid} → {rotation.new_kid}; link.rekey queued for "
        f"{len(rotation.partners)} partner(s): {', '.join(rotation.partners) or '-'}; "
        f"old key kept in {rotation.retired_key}. Restart the node within {overlap_seconds} s."
    )
    move_hub_entry(
        settings,
        account_id=settings.account_id,
        retired=rotation.retired_key,
        key_file=settings.key_path,
    )


@link_app.command("invite")
def link_invite(
    days: Annotated[int, typer.Option(help="days the invitation stays valid")] = 7,
    disclose: Annotated[str, typer.Option(help="named | anonymous | hidden")] = "named",
    auto_accept: Annotated[bool, typer.Option(help="partner accepts offers automatically")] = False,
    share_contacts: Annotated[bool, typer.Option(help="share requester contacts")] = False,
    subdelegation: Annotated[
        bool, typer.Option("--subdelegation/--no-subdelegation", help="allow sub-delegation")
    ] = True,
) -> None:
    """Print a single-use invitation token for a downstream partner."""
    from account.bootstrap import build_context
    from account.links import service as link_service
    from account.links.models import Contract, InvitationCreate

    ctx = build_context(_settings())
    contract = Contract(
        disclose_subcontractors=disclose,
        auto_accept=auto_accept,
        share_requester_contacts=share_contacts,
        allow_subdelegation=subdelegation,
    )
    with Session(ctx.engine) as session:
        _invitation, token = link_service.create_invitation(
            session=session,
            identity=ctx.identity,
            invitation_in=InvitationCreate(contract=contract, expires_in_days=days),
            api_url=ctx.settings.public_url or None,
        )
        session.commit()
    typer.echo(token)


@link_app.command("accept")
def link_accept(token: Annotated[str, typer.Argument(help="the invitation token")]) -> None:
    """Accept an upstream's invitation; the running node sends the acceptance."""
    from account.bootstrap import build_context
    from account.errors import AccountError
    from account.links import service as link_service

    ctx = build_context(_settings())
    with Session(ctx.engine) as session:
        try:
            link = link_service.accept_invitation(
                session=session,
                identity=ctx.identity,
                token=token,
                api_url=ctx.settings.public_url or None,
            )
        except AccountError as exc:
            console.print(f"[red]cannot accept:[/] {exc.detail}")
            raise typer.Exit(1) from exc
        session.commit()
        console.print(
            f"linked to [bold]{link.peer_account}[/] (link {link.id}, kid {link.peer_kid})"
        )


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option()] = 50,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Show rejected inbound messages with their reasons."""
    from account.bootstrap import build_context
    from account.messaging.models import RejectedInbound
    from exchange.clock import instant

    ctx = build_context(_settings())
    with Session(ctx.engine) as session:
        rows = session.exec(
            select(RejectedInbound).order_by(col(RejectedInbound.id).desc()).limit(limit)
        ).all()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "received_at": instant(r.received_at),
                        "reason": r.reason,
                        "detail": r.detail,
                        "message_id": r.message_id,
                        "from": r.from_account,
                        "type": r.type,
                        "size": r.size,
                    }
                    for r in rows
                ],
                indent=2,
            )
        )
        return
    table = Table(title=f"rejected messages of {ctx.account_id}")
    for column in ("received", "reason", "detail", "from", "type", "message id"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            instant(r.received_at),
            r.reason,
            r.detail[:60],
            r.from_account or "",
            r.type or "",
            r.message_id or "",
        )
    console.print(table)


@dlq_app.command("replay")
def dlq_replay(limit: Annotated[int, typer.Option()] = 100) -> None:
    """Move dead-lettered messages of this account back into its inbox on the broker."""
    from exchange.amqp import AmqpTransport
    from exchange.broker_identity import IdentityAmqpTransport

    settings = _settings()

    async def run() -> int:
        # With broker identity, as this account's own user (its inbox takes its own user_id).
        kind = IdentityAmqpTransport if settings.broker_identity else AmqpTransport
        transport = kind(settings.amqp_url)
        await transport.connect()
        try:
            return await transport.replay_dead(settings.account_id, limit=limit)
        finally:
            await transport.close()

    console.print(f"replayed {asyncio.run(run())} message(s) into tix.inbox.{settings.account_id}")


@outbox_app.command("list")
def outbox_list(
    state: Annotated[str, typer.Option(help="pending | sent | failed | superseded")] = "pending",
    limit: Annotated[int, typer.Option()] = 50,
) -> None:
    """Show outbox rows with their tries and last error."""
    from account.bootstrap import build_context
    from account.messaging.models import OutboxMessage
    from exchange.clock import instant

    ctx = build_context(_settings())
    with Session(ctx.engine) as session:
        rows = session.exec(
            select(OutboxMessage)
            .where(OutboxMessage.state == state)
            .order_by(col(OutboxMessage.id))
            .limit(limit)
        ).all()
    table = Table(title=f"{state} outbox rows of {ctx.account_id}")
    for column in ("created", "to", "type", "tries", "last error", "message id"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            instant(r.created_at),
            r.to_account,
            r.type,
            str(r.tries),
            r.last_error or "",
            r.message_id,
        )
    console.print(table)


@outbox_app.command("retry")
def outbox_retry() -> None:
    """Put given-up (failed) rows back in line; the running node sends them in order."""
    from account.bootstrap import build_context
    from account.messaging.relay import retry_failed

    ctx = build_context(_settings())
    console.print(f"{retry_failed(ctx.engine)} failed row(s) back to pending")


@db_app.command("upgrade")
def db_upgrade(
    revision: Annotated[str, typer.Option(help="target revision")] = "head",
) -> None:
    """Migrate the database to the newest schema (stop the node and back it up first)."""
    from account import migrate

    before, after = migrate.upgrade(_settings().db_url, revision)
    console.print(f"database schema: {before or 'none'} → {after}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's schema revision and the one this code needs."""
    from account import migrate
    from account.db import make_engine

    engine = make_engine(_settings().db_url)
    try:
        revision = migrate.current(engine)
    finally:
        engine.dispose()
    head = migrate.head()
    state = "up to date" if revision == head else "run `tix db upgrade`"
    console.print(f"database {revision or 'none'}, code {head}: {state}")


@app.command("demo")
def demo(
    levels: Annotated[int, typer.Option(min=2, max=6, help="companies in the chain")] = 4,
    serve: Annotated[bool, typer.Option(help="keep the nodes up afterwards")] = False,
    transport: Annotated[str, typer.Option(help="auto | amqp | inprocess")] = "auto",
) -> None:
    """Run a delegation chain end to end on this machine and print it with its timings."""
    from account.demo import run_demo

    raise typer.Exit(asyncio.run(run_demo(levels=levels, serve=serve, transport=transport)))


@app.command("bench")
def bench(
    tickets: Annotated[int, typer.Option(min=1, max=2000, help="tickets down the chain")] = 200,
    raw_messages: Annotated[
        int, typer.Option(min=1, max=100_000, help="messages of the raw aio-pika baseline")
    ] = 2000,
    rate: Annotated[
        float, typer.Option(min=0, help="tickets offered per second (0: as fast as it goes)")
    ] = 0.0,
    concurrency: Annotated[int, typer.Option(min=1, max=64, help="HTTP requests in flight")] = 8,
    timeout: Annotated[float, typer.Option(min=1, max=3600, help="seconds per phase")] = 300.0,
    amqp_url: Annotated[
        str, typer.Option(envvar="TIX_AMQP_URL", help="the broker to measure")
    ] = "amqp://guest:guest@127.0.0.1:5672/",
    keep: Annotated[bool, typer.Option(help="keep the nodes' data directory")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the figures as JSON")] = False,
) -> None:
    """Raw RabbitMQ rate vs Tix down a four-level chain of node processes (docs/performance.md)."""
    from account.bench.run import run_bench, table

    result = run_bench(
        amqp_url=amqp_url,
        tickets=tickets,
        raw_messages=raw_messages,
        rate=rate,
        concurrency=concurrency,
        timeout=timeout,
        keep=keep,
        console=Console(stderr=True),
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2, default=str))
    else:
        console.print(table(result))


@app.command("chaos")
def chaos(
    tickets: Annotated[int, typer.Option(min=1, max=5000, help="tickets per scenario")] = 500,
    scenario: Annotated[
        list[str] | None, typer.Option(help="run only this scenario (repeatable)")
    ] = None,
    long: Annotated[bool, typer.Option(help="60 s outage, 5-minute skew window")] = False,
    keep: Annotated[bool, typer.Option(help="keep the nodes' data and logs")] = False,
) -> None:
    """Fault suite: a four-level chain on a private broker, one fault per scenario (source tree)."""
    import importlib
    import sys

    root = Path.cwd()
    if not (root / "tests" / "faults" / "chaos.py").exists():
        raise typer.BadParameter("run it from a Tix source checkout (tests/faults is not shipped)")
    sys.path.insert(0, str(root))
    runner = importlib.import_module("tests.faults.chaos")  # the suite lives with the tests
    known = list(importlib.import_module("tests.faults.scenarios").SCENARIOS)
    unknown = sorted(set(scenario or []) - set(known))
    if unknown:
        raise typer.BadParameter(f"unknown scenario {unknown}; known: {sorted(known)}")
    raise typer.Exit(runner.run_all(scenario or known, tickets, long, keep))


def main() -> None:
    app()
