"""The chain as seen from one node, and what each link discloses of it. Pure functions.

A node knows its own outgoing delegations (named: it linked those partners itself) and, for
each, the subtree that partner last rolled up. When it rolls up to its own upstream, it filters
what lies below it by that link's ``disclose_subcontractors``: ``named`` passes companies on,
``anonymous`` replaces them by "subcontractor, level N", ``hidden`` passes nothing below it.
Levels are absolute: the origin's ticket is level 0, the first delegation level 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from exchange.clock import instant


@dataclass(frozen=True)
class DelegationView:
    """What one node knows of one of its outgoing delegations."""

    id: str
    partner: str
    partner_label: str
    level: int
    state: str
    status: str | None
    assignee_role: str | None
    offered_at: datetime | None
    accepted_at: datetime | None
    resolved_at: datetime | None
    subtree: list[dict[str, Any]]
    response_by: datetime | None = None
    resolve_by: datetime | None = None
    sla_state: str = "none"


def _when(moment: datetime | None) -> str | None:
    return instant(moment) if moment else None


def node_of(view: DelegationView) -> dict[str, Any]:
    """A chain node (wire ``ChainNode`` shape) for one of our own delegations."""
    return {
        "id": view.id,
        "partner": view.partner,
        "partner_label": view.partner_label,
        "level": view.level,
        "state": view.state,
        "status": view.status,
        "assignee_role": view.assignee_role,
        "offered_at": _when(view.offered_at),
        "accepted_at": _when(view.accepted_at),
        "resolved_at": _when(view.resolved_at),
        "due": {"response_by": _when(view.response_by), "resolve_by": _when(view.resolve_by)}
        if view.response_by or view.resolve_by
        else None,
        "sla_state": view.sla_state,
        "delegations": view.subtree,
    }


def _anonymise(node: dict[str, Any]) -> dict[str, Any]:
    return node | {
        "partner": None,
        "partner_label": f"subcontractor, level {node['level']}",
        "delegations": [_anonymise(child) for child in node.get("delegations", [])],
    }


def disclose(nodes: list[dict[str, Any]], policy: str) -> list[dict[str, Any]]:
    """Filter our subtree for an upstream by that link's ``disclose_subcontractors``."""
    if policy == "hidden":
        return []
    if policy == "anonymous":
        return [_anonymise(node) for node in nodes]
    return nodes


def api_node(node: dict[str, Any]) -> dict[str, Any]:
    """A chain node in the HTTP API's shape (ARCHITECTURE §7)."""
    due = node.get("due") or {"response_by": None, "resolve_by": None}
    return {
        "id": node["id"],
        "partner": node.get("partner"),
        "partner_label": node.get("partner_label"),
        "level": node["level"],
        "state": node["state"],
        "status": node.get("status"),
        "assignee_role": node.get("assignee_role"),
        "offered_at": node.get("offered_at"),
        "accepted_at": node.get("accepted_at"),
        "resolved_at": node.get("resolved_at"),
        "due": due,
        "sla": {"state": node.get("sla_state", "none")},
        "delegations": [api_node(child) for child in node.get("delegations", [])],
    }


def walk(nodes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every node of a subtree, parents before children."""
    out: list[dict[str, Any]] = []
    stack = list(reversed(nodes))
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(reversed(node.get("delegations", [])))
    return out


def author_upstream(
    policy: str, author: str | None, *, origin_level: int, forwarder: str
) -> str | None:
    """Who a comment or attachment from below appears to be from, past this upstream link."""
    if policy == "anonymous":
        return f"subcontractor, level {origin_level}"
    if policy == "hidden":
        return forwarder
    return author
