"""``tix exchange provision|deprovision ACCOUNT``: one broker user per account (docs/security.md).

Run by the hub's operator with the broker administrator's AMQP URL; the management API is
reached with the same credentials. Prints the account's own AMQP URL (its password is shown
only here) and the two settings its node needs.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Annotated
from urllib.parse import unquote, urlsplit

import typer

if TYPE_CHECKING:
    from exchange.provisioning import BrokerAdmin, BrokerUser

__all__ = ["exchange_app"]

exchange_app = typer.Typer(
    help="The exchange hub: broker users for accounts (broker-level identity).",
    no_args_is_help=True,
)

AdminUrl = Annotated[
    str,
    typer.Option(
        envvar="TIX_BROKER_ADMIN_URL",
        help="the broker administrator's AMQP URL (its credentials also open the management API)",
    ),
]
ManagementUrl = Annotated[
    str,
    typer.Option(envvar="TIX_BROKER_MANAGEMENT_URL", help="the RabbitMQ management API"),
]


def _admin(admin_url: str, management_url: str) -> BrokerAdmin:
    from exchange.provisioning import BrokerAdmin

    parts = urlsplit(admin_url)
    return BrokerAdmin(
        management_url,
        amqp_url=admin_url,
        username=unquote(parts.username or "guest"),
        password=unquote(parts.password or "guest"),
    )


@exchange_app.command("provision")
def provision(
    account: Annotated[str, typer.Argument(help="the account id, also its broker user name")],
    admin_url: AdminUrl = "amqp://guest:guest@127.0.0.1:5672/",
    management_url: ManagementUrl = "http://127.0.0.1:15672",
) -> None:
    """Create (or reset) ACCOUNT's broker user, permissions and queues; print its AMQP URL."""
    from exchange.errors import ExchangeError

    async def run() -> BrokerUser:
        async with _admin(admin_url, management_url) as admin:
            return await admin.provision(account)

    try:
        user = asyncio.run(run())
    except (ExchangeError, ValueError) as exc:
        typer.echo(f"provisioning {account} failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"TIX_AMQP_URL={user.amqp_url}")
    typer.echo("TIX_BROKER_IDENTITY=true")


@exchange_app.command("deprovision")
def deprovision(
    account: Annotated[str, typer.Argument(help="the account id")],
    admin_url: AdminUrl = "amqp://guest:guest@127.0.0.1:5672/",
    management_url: ManagementUrl = "http://127.0.0.1:15672",
) -> None:
    """Delete ACCOUNT's broker user (its queues stay)."""
    from exchange.errors import ExchangeError

    async def run() -> None:
        async with _admin(admin_url, management_url) as admin:
            await admin.deprovision(account)

    try:
        asyncio.run(run())
    except (ExchangeError, ValueError) as exc:
        typer.echo(f"deprovisioning {account} failed: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"{account}: broker user deleted")
