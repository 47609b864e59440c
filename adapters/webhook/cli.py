"""``tix adapter webhook …``: run the adapter for help-desk participants."""

from __future__ import annotations

from typing import Annotated

import typer

from account.config import Settings

webhook_app = typer.Typer(
    help="The webhook adapter (participants with their own help desk).", no_args_is_help=True
)


@webhook_app.command("serve")
def serve(
    host: Annotated[str, typer.Option()] = "127.0.0.1",
    port: Annotated[int, typer.Option()] = 8000,
) -> None:
    """Run the adapter: the node's API and runtime, the webhook sender, the inbound endpoint."""
    from adapters.webhook.server import run

    if Settings().transport == "inprocess":
        raise typer.BadParameter("a served adapter talks to RabbitMQ")
    run(host, port)
