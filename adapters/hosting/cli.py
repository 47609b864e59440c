"""``tix adapter <name> db upgrade|current``, ``tix adapter <name> keys rotate`` and
``tix adapter <name> hub register``.

``add_commands`` gives each adapter's Typer app the same commands for its database (the node's
schema and the adapter's own tables), its hosted accounts' keys and their hub directory entries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from account.config import Settings
from adapters.hosting.schema import AdapterSchema

console = Console()


def add_commands(app: typer.Typer, schema: AdapterSchema) -> None:
    db_app = typer.Typer(
        help=f"The {schema.name} adapter's database: the node's schema and its own tables.",
        no_args_is_help=True,
    )
    keys_app = typer.Typer(help="Signing keys of the hosted accounts.", no_args_is_help=True)
    hub_app = typer.Typer(
        help="The hosted accounts in the hub's directory (TIX_HUB_URL).", no_args_is_help=True
    )
    app.add_typer(db_app, name="db")
    app.add_typer(keys_app, name="keys")
    app.add_typer(hub_app, name="hub")

    @db_app.command("upgrade")
    def db_upgrade() -> None:
        """Migrate the node's schema (as `tix db upgrade`), then the adapter's tables."""
        from account import migrate as node_migrate
        from adapters.hosting import migrate

        url = Settings().db_url
        before, after = node_migrate.upgrade(url)
        console.print(f"node schema: {before or 'none'} → {after}")
        before, after = migrate.prepare(schema, url)
        console.print(f"{schema.name} adapter tables: {before or 'none'} → {after}")

    @db_app.command("current")
    def db_current() -> None:
        """Show the revisions of the node's schema and of the adapter's tables."""
        from account import migrate as node_migrate
        from account.db import make_engine
        from adapters.hosting import migrate

        engine = make_engine(Settings().db_url)
        try:
            node, tables = node_migrate.current(engine), migrate.current(schema, engine)
        finally:
            engine.dispose()
        node_head, tables_head = node_migrate.head(), migrate.head(schema)
        ok = node == node_head and tables == tables_head
        state = "up to date" if ok else f"run `tix adapter {schema.name} db upgrade`"
        console.print(
            f"node schema {node or 'none'} (code {node_head}), {schema.name} adapter tables "
            f"{tables or 'none'} (code {tables_head}): {state}"
        )

    @keys_app.command("rotate")
    def keys_rotate(
        account: Annotated[str, typer.Option(help="the hosted account (participant) id")],
        overlap_seconds: Annotated[
            int,
            typer.Option(min=0, max=30 * 86_400, help="how long partners still accept the old key"),
        ] = 86_400,
    ) -> None:
        """New key for a hosted account; its partners get a link.rekey signed with the old one."""
        from account.hub.cli import move_hub_entry
        from account.keys import RotationError
        from adapters.hosting import keys, participants

        settings = Settings()
        try:
            rotation = keys.rotate(settings, schema, account, overlap_seconds=overlap_seconds)
        except RotationError as exc:
            console.print(f"[red]cannot rotate:[/] {exc}")
            raise typer.Exit(1) from exc
        console.print(
            f"{account}: kid {rotation.old_kid} → {rotation.new_kid}; link.rekey queued for "
            f"{len(rotation.partners)} partner(s): {', '.join(rotation.partners) or '-'}; "
            f"old key kept in {rotation.retired_key}. "
            f"Restart the adapter within {overlap_seconds} s."
        )
        move_hub_entry(
            settings,
            account_id=account,
            retired=rotation.retired_key,
            key_file=participants.key_path(settings, account),
        )

    @hub_app.command("register")
    def hub_register(
        account: Annotated[
            str | None, typer.Option(help="one hosted account (default: every one)")
        ] = None,
        signed_with: Annotated[
            Path | None,
            typer.Option(help="after a rotation: the retired key file the hub still pins"),
        ] = None,
    ) -> None:
        """Register (or update) hosted accounts in the hub's directory, each signed with its
        own key, with its participant name and this adapter's transport."""
        from fastapi import HTTPException

        from account.errors import AccountError
        from adapters.hosting import hub
        from exchange.errors import KeyFileError
        from exchange.hub.client import HubRefused, HubUnavailable
        from exchange.signing import load_key_file

        settings = Settings()
        if signed_with is not None and account is None:
            raise typer.BadParameter("--signed-with needs --account")
        try:
            old_key = load_key_file(signed_with) if signed_with is not None else None
            accounts = hub.hosted(settings, schema, account)
        except (AccountError, KeyFileError) as exc:
            console.print(f"[red]failed:[/] {getattr(exc, 'detail', None) or exc}")
            raise typer.Exit(1) from exc
        failed = 0
        for hosted in accounts:
            try:
                entry = asyncio.run(hub.register(settings, schema, hosted, signed_with=old_key))
            except (AccountError, HTTPException, HubRefused, HubUnavailable, KeyFileError) as exc:
                failed += 1
                console.print(f"[red]{hosted.account_id}:[/] {getattr(exc, 'detail', None) or exc}")
                continue
            console.print(f"registered [bold]{entry['account_id']}[/] (kid {entry['kid']})")
        if not accounts:
            console.print(f"no {schema.name} participants hosted by {settings.account_id}")
        if failed:
            raise typer.Exit(1)


def serve(run: Callable[[str, int], None], host: str, port: int) -> None:
    """Run an adapter (``run``: its server module's), refusing an out-of-date node schema."""
    from account.migrate import SchemaOutOfDate

    if Settings().transport == "inprocess":
        raise typer.BadParameter("a served adapter talks to RabbitMQ")
    try:
        run(host, port)
    except SchemaOutOfDate as exc:
        console.print(f"[red]cannot serve:[/] {exc}")
        raise typer.Exit(1) from exc
