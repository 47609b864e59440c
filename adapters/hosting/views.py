"""What every adapter's admin routes share: the adapter of the app, listing, hosting a new one.

The routes themselves stay with each adapter (its paths and bodies); they authenticate the
adapter's admin with the node's own ``AdminUser`` dependency.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import Request
from sqlmodel import Session, col

from account.context import Identity, NodeContext
from account.deps import commit
from adapters.hosting import participants
from adapters.hosting.participants import HostedParticipant
from adapters.hosting.service import HostedAdapter

A = TypeVar("A", bound=HostedAdapter)
P = TypeVar("P", bound=HostedParticipant)


def adapter_of(request: Request, cls: type[A]) -> A:
    """The adapter serving this app (``adapters.hosting.server.app_for``)."""
    adapter = request.app.state.adapter
    if not isinstance(adapter, cls):
        raise TypeError(f"this app serves {type(adapter).__name__}, not {cls.__name__}")
    return adapter


def host_new(
    request: Request, session: Session, ctx: NodeContext, created: tuple[P, Identity]
) -> P:
    """Commit a participant just created and start hosting its account."""
    participant, identity = created
    commit(session, ctx)
    adapter_of(request, HostedAdapter).host(identity)
    return participant


def listing(
    session: Session,
    ctx: NodeContext,
    model: type[P],
    public: Callable[[P], dict[str, Any]],
) -> dict[str, Any]:
    """The adapter's participants, oldest first."""
    rows = session.exec(
        participants.of_adapter(model, ctx.account_id).order_by(col(model.id))
    ).all()
    return {"items": [public(row) for row in rows]}
