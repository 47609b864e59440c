"""``tix adapter webhook …``: run the adapter for help-desk participants."""

from __future__ import annotations

from typing import Annotated

import typer

from adapters.hosting import cli as hosting_cli
from adapters.webhook import SCHEMA

webhook_app = typer.Typer(
    help="The webhook adapter (participants with their own help desk).", no_args_is_help=True
)
hosting_cli.add_commands(webhook_app, SCHEMA)
secret_app = typer.Typer(help="The help desks' webhook secrets.", no_args_is_help=True)
webhook_app.add_typer(secret_app, name="secret")


@secret_app.command("rotate")
def secret_rotate(
    account: Annotated[str, typer.Option(help="the hosted account (participant) id")],
    overlap_seconds: Annotated[
        int,
        typer.Option(
            min=0, max=7 * 86_400, help="how long the old secret still signs and is accepted"
        ),
    ] = 86_400,
) -> None:
    """A new webhook secret for a help desk, printed once; the old one stays valid meanwhile.

    The running adapter reads secrets from its database, so no restart is needed.
    """
    from datetime import timedelta

    from rich.console import Console

    from account.config import Settings
    from account.db import make_engine, session_scope
    from adapters.hosting.participants import of_adapter
    from adapters.webhook.models import WebhookParticipant
    from adapters.webhook.participants import rotate_secret
    from exchange.clock import utcnow

    settings = Settings()
    engine = make_engine(settings.db_url)
    try:
        with session_scope(engine) as session:
            participant = session.exec(
                of_adapter(WebhookParticipant, settings.account_id).where(
                    WebhookParticipant.account_id == account
                )
            ).first()
            if participant is None:
                Console(stderr=True).print(
                    f"[red]cannot rotate:[/] {account} is not a webhook participant hosted by "
                    f"{settings.account_id}"
                )
                raise typer.Exit(1)
            rotate_secret(
                session=session,
                participant=participant,
                overlap=timedelta(seconds=overlap_seconds),
                now=utcnow(),
            )
            secret, until = participant.secret, participant.previous_secret_until
    finally:
        engine.dispose()
    kept = f"the old secret is valid until {until.isoformat()}" if until else "old secret revoked"
    Console(stderr=True).print(f"{account}: new webhook secret ({kept}); shown once:")
    typer.echo(secret)


@webhook_app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the adapter: the node's API and runtime, the webhook sender, the inbound endpoint."""
    from adapters.webhook.server import run

    hosting_cli.serve(run, host, port)
