"""The ``tix`` command with the adapters: ``account.cli`` plus ``tix adapter …``.

The console script points here, the top layer, so ``account`` never imports ``adapters``. It also
lets the demo use an e-mail participant as its last level (``account.demo.register_leaf``).
"""

from __future__ import annotations

import typer

from account import demo
from account.cli import app
from adapters.email.cli import email_app
from adapters.webhook.cli import webhook_app

adapter_app = typer.Typer(help="Adapters for partners without a node.", no_args_is_help=True)
adapter_app.add_typer(email_app, name="email")
adapter_app.add_typer(webhook_app, name="webhook")
app.add_typer(adapter_app, name="adapter")


async def _email_leaf(setup: demo.LeafSetup) -> demo.Participant:
    from adapters.email.demo import email_leaf  # only when the demo runs

    return await email_leaf(setup)


demo.register_leaf(_email_leaf)


def main() -> None:
    app()
