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


@webhook_app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the adapter: the node's API and runtime, the webhook sender, the inbound endpoint."""
    from adapters.webhook.server import run

    hosting_cli.serve(run, host, port)
