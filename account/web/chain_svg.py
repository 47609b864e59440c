"""The chain of a ticket as a picture: a top-down tree layout for an SVG. Pure functions.

The input is what ``GET /api/v1/tickets/{n}/chain`` shows: the ticket at the root and its
delegations in the API's chain-node shape (``account.delegations.chain.api_node``), recursively.
Each level is a row; leaves take one column each, left to right in tree order, and a parent sits
centred over its children, so a chain three or four levels deep stays narrow enough for a phone.
The template draws the boxes and edges this module places; nothing here knows HTML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["BOX_H", "BOX_W", "Box", "Edge", "Picture", "layout"]

BOX_W = 220
BOX_H = 78
GAP_X = 24
GAP_Y = 40
PAD = 8
_LABEL_CHARS = 24

SLA_STATES = ("none", "ok", "at_risk", "breached", "met")


@dataclass(frozen=True)
class Box:
    """One node of the picture: where it is and what it says."""

    x: int
    y: int
    title: str
    level: int
    state: str
    status: str
    due: str | None
    sla: str
    breaches: int
    root: bool
    tooltip: str
    disclosed: bool
    note: str = ""
    upstream: bool = False


@dataclass(frozen=True)
class Edge:
    x1: int
    y1: int
    x2: int
    y2: int


@dataclass
class Picture:
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)


def _short(text: str, limit: int = _LABEL_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(value: Any) -> str | None:
    """``2026-11-22 08:00`` from an RFC 3339 instant (UTC), or None."""
    if not isinstance(value, str) or len(value) < 16:
        return None
    return value[:10] + " " + value[11:16]


def _sla_of(node: dict[str, Any]) -> tuple[str, int]:
    sla = node.get("sla") or {}
    state = sla.get("state") if isinstance(sla, dict) else None
    if state not in SLA_STATES:
        state = node.get("sla_state") if node.get("sla_state") in SLA_STATES else "none"
    events = sla.get("events") if isinstance(sla, dict) else None
    breaches = 0
    if isinstance(events, list):
        breaches = sum(1 for e in events if isinstance(e, dict) and e.get("kind") == "breach")
    return str(state), breaches


def _leaves(node: dict[str, Any]) -> int:
    children = node.get("delegations") or []
    return max(1, sum(_leaves(child) for child in children))


def layout(
    *,
    number: str,
    status: str,
    label: str,
    level: int,
    delegations: list[dict[str, Any]],
    sla: str = "none",
    undisclosed: str = "undisclosed",
    upstream: tuple[str, str] | None = None,
) -> Picture:
    """Place the ticket (root) and its delegation tree; ``undisclosed`` names hidden companies.

    ``upstream`` is ``(company, its ticket number)`` for a ticket received from a partner: that
    partner is drawn above the root, so a middle node sees where its work came from.
    """
    picture = Picture(width=0, height=0)
    root = {"delegations": delegations}
    columns = _leaves(root)
    step_x = BOX_W + GAP_X
    step_y = BOX_H + GAP_Y

    def centre_x(first_column: int, span: int) -> int:
        return PAD + first_column * step_x + (span * step_x - GAP_X) // 2

    def place(node: dict[str, Any], depth: int, first_column: int) -> tuple[int, int]:
        """Place ``node``'s subtree from ``first_column``; return the node's top-centre."""
        span = _leaves(node)
        cx = centre_x(first_column, span)
        y = PAD + depth * step_y
        column = first_column
        for child in node.get("delegations") or []:
            child_x, child_y = place(child, depth + 1, column)
            picture.edges.append(Edge(cx, y + BOX_H, child_x, child_y))
            column += _leaves(child)
        partner = node.get("partner_label") or node.get("partner")
        disclosed = bool(partner)
        title = str(partner) if partner else undisclosed
        sla, breaches = _sla_of(node)
        due = node.get("due") or {}
        resolve_by = _when(due.get("resolve_by")) if isinstance(due, dict) else None
        node_status = str(node.get("status") or "")
        lines = [
            f"{title} · L{node.get('level')}",
            f"{node.get('state')} / {node_status or '-'}",
        ]
        if isinstance(due, dict):
            for key in ("response_by", "resolve_by"):
                if due.get(key):
                    lines.append(f"{key}: {due[key]}")
        lines.append(f"SLA: {sla}" + (f", {breaches} breach(es)" if breaches else ""))
        picture.boxes.append(
            Box(
                x=cx - BOX_W // 2,
                y=y,
                title=_short(title),
                level=int(node.get("level") or 0),
                state=str(node.get("state") or ""),
                status=node_status,
                due=resolve_by,
                sla=sla,
                breaches=breaches,
                root=False,
                tooltip="\n".join(lines),
                disclosed=disclosed,
            )
        )
        return cx, y

    root_cx = centre_x(0, columns)
    column = 0

    def depth_of(node: dict[str, Any]) -> int:
        children = node.get("delegations") or []
        return 1 + max((depth_of(c) for c in children), default=0)

    top = 1 if upstream else 0
    root_y = PAD + top * step_y
    for child in delegations:
        child_x, child_y = place(child, top + 1, column)
        picture.edges.append(Edge(root_cx, root_y + BOX_H, child_x, child_y))
        column += _leaves(child)
    depth_max = depth_of(root) + top
    picture.boxes.insert(
        0,
        Box(
            x=root_cx - BOX_W // 2,
            y=root_y,
            title=_short(label),
            level=level,
            state="",
            status=status,
            due=None,
            sla=sla if sla in SLA_STATES else "none",
            breaches=0,
            root=True,
            tooltip=f"{number} ({label}), level {level}: {status}",
            disclosed=True,
            note=number,
        ),
    )
    if upstream is not None:
        company, ref = upstream
        picture.edges.append(Edge(root_cx, PAD + BOX_H, root_cx, root_y))
        picture.boxes.insert(
            0,
            Box(
                x=root_cx - BOX_W // 2,
                y=PAD,
                title=_short(company),
                level=level - 1,
                state="",
                status="",
                due=None,
                sla="none",
                breaches=0,
                root=False,
                tooltip=f"{company}: {ref}, level {level - 1}",
                disclosed=True,
                note=ref,
                upstream=True,
            ),
        )
    picture.width = 2 * PAD + columns * step_x - GAP_X
    picture.height = 2 * PAD + depth_max * step_y - GAP_Y
    return picture
