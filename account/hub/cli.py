"""CLI for the hub: ``tix exchange serve``, ``tix hub register|search|invite|sent`` and
``tix link inbox|accept-incoming|decline-incoming`` (registered on the existing apps in
``account/cli.py``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlmodel import Session

from account.config import Settings
from account.errors import AccountError

hub_app = typer.Typer(help="The exchange hub: directory and invitations.", no_args_is_help=True)
console = Console()


def exchange_serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8700,
) -> None:
    """Run the exchange hub (settings from TIX_HUB_*; docs/operator-guide.md)."""
    from exchange.hub.serve import serve

    serve(host, port)


def _fail(exc: Exception) -> typer.Exit:
    detail = getattr(exc, "detail", None) or str(exc)
    console.print(f"[red]failed:[/] {detail}")
    return typer.Exit(1)


@hub_app.command("register")
def hub_register(
    transport: Annotated[str, typer.Option(help="amqp | email | webhook")] = "amqp",
    signed_with: Annotated[
        Path | None,
        typer.Option(help="after tix keys rotate: the retired key file the hub still pins"),
    ] = None,
) -> None:
    """Register (or update) this account in the hub's directory (TIX_HUB_URL)."""
    from fastapi import HTTPException

    from account.bootstrap import build_context
    from account.hub import service
    from exchange.errors import KeyFileError
    from exchange.signing import load_key_file

    ctx = build_context(Settings())
    try:
        old_key = load_key_file(signed_with) if signed_with is not None else None
        entry = asyncio.run(service.register(ctx, transport=transport, signed_with=old_key))
    except KeyFileError as exc:
        raise _fail(exc) from exc
    except (AccountError, HTTPException) as exc:
        raise _fail(exc) from exc
    console.print(f"registered [bold]{entry['account_id']}[/] (kid {entry['kid']})")


@hub_app.command("search")
def hub_search(query: Annotated[str, typer.Argument(help="part of an id or name")] = "") -> None:
    """Search the hub's directory."""
    from fastapi import HTTPException

    from account.bootstrap import build_context
    from account.hub import service

    ctx = build_context(Settings())
    try:
        items = asyncio.run(service.search(ctx, query))
    except (AccountError, HTTPException) as exc:
        raise _fail(exc) from exc
    for item in items:
        typer.echo(f"{item['account_id']}\t{item['display_name']}\t{item['transport']}")


@hub_app.command("invite")
def hub_invite(
    to: Annotated[str, typer.Argument(help="the account to invite (from tix hub search)")],
    days: Annotated[int, typer.Option(help="days the invitation stays valid")] = 7,
    note: Annotated[str, typer.Option(help="a note for the partner's admin")] = "",
) -> None:
    """Create an invitation and deliver it to ACCOUNT's node through the hub."""
    from fastapi import HTTPException

    from account.bootstrap import build_context
    from account.hub import service
    from account.links.models import InvitationCreate

    ctx = build_context(Settings())
    with Session(ctx.engine) as session:
        try:
            sent = asyncio.run(
                service.invite(
                    ctx,
                    session,
                    to=to,
                    invitation_in=InvitationCreate(expires_in_days=days, note=note),
                    note=note,
                )
            )
        except (AccountError, HTTPException) as exc:
            raise _fail(exc) from exc
    console.print(f"invitation sent to [bold]{to}[/] (link {sent['link_id']})")


@hub_app.command("sent")
def hub_sent(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    limit: Annotated[int, typer.Option(min=1, max=200, help="at most this many")] = 50,
) -> None:
    """Invitations this account sent through the hub, and what became of them (accepted,
    declined with the partner's reason, expired): the hub is asked for news first."""
    from fastapi import HTTPException

    from account.bootstrap import build_context
    from account.hub import service

    ctx = build_context(Settings())
    try:
        result = asyncio.run(service.sent(ctx, limit=limit))
    except (AccountError, HTTPException) as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    if not result["synced"]:
        console.print("[yellow]the hub did not answer: states as last known[/]")
    for item in result["items"]:
        reason = f"\t{item['reason']}" if item["reason"] else ""
        typer.echo(f"{item['id']}\t{item['to']}\t{item['state']}\t{item['sent_at']}{reason}")


def move_hub_entry(settings: Settings, *, account_id: str, retired: Path, key_file: Path) -> bool:
    """After ``tix keys rotate`` (or an adapter's ``keys rotate --account``): move the
    account's hub directory entry to the new key, signed with the retired one, and say what
    happened. False when the hub still pins the old key (the rotation itself stands)."""
    if not settings.hub_url:
        return True
    from account.hub import service
    from exchange.errors import KeyFileError
    from exchange.hub.client import HubRefused, HubUnavailable
    from exchange.signing import load_key_file

    hint = (
        f"run `tix hub register --signed-with {retired}` (for a hosted account: "
        f"`tix adapter <name> hub register --account {account_id} --signed-with {retired}`)"
    )
    try:
        entry = asyncio.run(
            service.move_key(
                settings.hub_url,
                account_id,
                old_key=load_key_file(retired),
                new_key=load_key_file(key_file),
            )
        )
    except (HubRefused, HubUnavailable, KeyFileError) as exc:
        console.print(f"[yellow]the hub's directory still has the old key of {account_id}:[/] ")
        console.print(f"{exc}; {hint}")
        return False
    if entry is None:
        console.print(f"{account_id} is not in the hub's directory: nothing to move there.")
    else:
        console.print(f"hub directory: {account_id} now has kid {entry['kid']}.")
    return True


def link_inbox(
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """Invitations other accounts sent this account through the hub."""
    from fastapi import HTTPException

    from account.bootstrap import build_context
    from account.hub import service

    ctx = build_context(Settings())
    try:
        items = asyncio.run(service.incoming(ctx))
    except (AccountError, HTTPException) as exc:
        raise _fail(exc) from exc
    if as_json:
        typer.echo(json.dumps(items, indent=2))
        return
    for item in items:
        state = "" if item["valid"] else f"  INVALID: {item['problem']}"
        typer.echo(f"{item['id']}\t{item['from']} ({item['from_label']}){state}")


def link_accept_incoming(
    invitation_id: Annotated[str, typer.Argument(help="the id tix link inbox shows")],
) -> None:
    """Accept an invitation from the hub inbox; the running node sends the acceptance."""
    from fastapi import HTTPException

    from account.bootstrap import build_context
    from account.hub import service

    ctx = build_context(Settings())
    with Session(ctx.engine) as session:
        try:
            link = asyncio.run(service.accept_incoming(ctx, session, invitation_id))
        except (AccountError, HTTPException) as exc:
            raise _fail(exc) from exc
        console.print(f"linked to [bold]{link.peer_account}[/] (link {link.id})")


def link_decline_incoming(
    invitation_id: Annotated[str, typer.Argument(help="the id tix link inbox shows")],
    reason: Annotated[str, typer.Option(help="why, for the sender (at most 500 chars)")] = "",
) -> None:
    """Decline an invitation from the hub inbox: nothing is linked, and the sender's node
    learns it was declined (with the reason)."""
    from fastapi import HTTPException

    from account.bootstrap import build_context
    from account.hub import service

    ctx = build_context(Settings())
    try:
        declined = asyncio.run(service.decline_incoming(ctx, invitation_id, reason=reason))
    except (AccountError, HTTPException) as exc:
        raise _fail(exc) from exc
    console.print(f"declined the invitation from [bold]{declined['from']}[/]")
