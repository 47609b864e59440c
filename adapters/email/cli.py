"""``tix adapter email …``: run the adapter and redeem invitations for e-mail participants."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from sqlmodel import Session

from account.config import Settings
from adapters.email import SCHEMA
from adapters.hosting import cli as hosting_cli

email_app = typer.Typer(help="The e-mail adapter (e-mail-only participants).", no_args_is_help=True)
console = Console()
hosting_cli.add_commands(email_app, SCHEMA)


@email_app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the adapter: the node's API and runtime, the SMTP sender, listener and IMAP poller."""
    from adapters.email.server import run

    hosting_cli.serve(run, host, port)


@email_app.command("invite")
def invite(
    token: Annotated[str, typer.Option(help="the upstream's invitation token")],
    name: Annotated[str, typer.Option(help="the participant's display name")],
    email: Annotated[list[str], typer.Option(help="an allowed sender address (repeatable)")],
    language: Annotated[str, typer.Option(help="en | ru")] = "en",
) -> None:
    """Redeem an invitation for a new e-mail participant; the running adapter picks it up."""
    from pydantic import ValidationError

    from account.bootstrap import build_context
    from account.errors import AccountError
    from adapters.email import participants
    from adapters.email.outbound import Mailer
    from adapters.email.settings import MailSettings, reply_secret
    from adapters.hosting import migrate

    settings = Settings()
    migrate.prepare(SCHEMA, settings.db_url)
    ctx = build_context(settings)
    mailer = Mailer(mail=MailSettings(), secret=reply_secret(ctx.secret), adapter_id=ctx.account_id)
    try:
        participant_in = participants.ParticipantCreate(
            token=token, name=name, emails=email, language=language
        )
    except ValidationError as exc:
        raise typer.BadParameter(str(exc)) from exc
    with Session(ctx.engine, expire_on_commit=False) as session:
        try:
            participant, _identity = participants.create(
                session=session,
                settings=ctx.settings,
                adapter=ctx.identity,
                mailer=mailer,
                participant_in=participant_in,
            )
        except AccountError as exc:
            console.print(f"[red]cannot invite:[/] {exc.detail}")
            raise typer.Exit(1) from exc
        session.commit()
    console.print(
        f"participant [bold]{participant.name}[/] is account {participant.account_id}, "
        f"linked to {participant.upstream_account}; welcome mail queued"
    )
