"""Hosted accounts in the hub's directory (``tix adapter <name> hub register``).

Each account an adapter hosts is an account of the network like any other: registered in the
hub's directory with its own key (requests signed with it), its participant name as the display
name and the adapter's channel (``email`` | ``webhook``) as its transport, so other companies
find it and their invitations can reach it. ``tix adapter <name> keys rotate --account`` then
moves the entry to the new key with a request signed by the old one (``account.hub.service.
move_key``), as ``tix keys rotate`` does for a node.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import inspect
from sqlmodel import Session, col

from account.config import Settings
from account.db import make_engine
from account.errors import Conflict, NotFound
from adapters.hosting import participants
from adapters.hosting.schema import AdapterSchema
from exchange.hub.client import HubClient
from exchange.signing import load_key_file, public_key_b64


@dataclass(frozen=True)
class Hosted:
    account_id: str
    name: str
    key_file: Path


def hosted(settings: Settings, schema: AdapterSchema, account: str | None = None) -> list[Hosted]:
    """The participants this adapter account hosts (only ``account`` when given)."""
    model = schema.participant_model()
    engine = make_engine(settings.db_url)
    try:
        if str(model.__tablename__) not in inspect(engine).get_table_names():
            raise Conflict(
                f"the database has no {schema.name} adapter tables: run this in the "
                f"{schema.name} adapter's environment"
            )
        with Session(engine) as session:
            statement = participants.of_adapter(model, settings.account_id).order_by(
                col(model.account_id)
            )
            if account is not None:
                statement = statement.where(model.account_id == account)
            rows = session.exec(statement).all()
            found = [
                Hosted(r.account_id, r.name, participants.key_path(settings, r.account_id))
                for r in rows
            ]
    finally:
        engine.dispose()
    if account is not None and not found:
        raise NotFound(f"{account} is not a {schema.name} participant of {settings.account_id}")
    return found


async def register(
    settings: Settings,
    schema: AdapterSchema,
    account: Hosted,
    *,
    signed_with: Ed25519PrivateKey | None = None,
) -> dict[str, Any]:
    """Register (or update) one hosted account in the hub's directory, signed with its key
    (or with ``signed_with``: the retired key the hub still pins after a rotation)."""
    if not settings.hub_url:
        raise Conflict("no hub configured (TIX_HUB_URL)")
    key = load_key_file(account.key_file)
    client = HubClient(settings.hub_url, account=account.account_id, key=signed_with or key)
    return await client.register(
        display_name=account.name, public_key=public_key_b64(key), transport=schema.name
    )
