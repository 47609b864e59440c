"""Contract fields of the partners page's forms: a link's contract as the form shows it, and
the contract a submitted form describes."""

from __future__ import annotations

import json
from typing import Any

from starlette.datastructures import FormData

from account.errors import Invalid
from account.links.models import Contract
from account.web.deps import field

__all__ = ["contract_from", "contract_view"]


def contract_view(contract: dict[str, Any]) -> dict[str, Any]:
    view = Contract.model_validate(contract).model_dump()
    view["sla_json"] = json.dumps(view["sla"], ensure_ascii=False, indent=1) if view["sla"] else ""
    return view


def contract_from(form: FormData) -> dict[str, Any]:
    """The contract fields of a form (checkboxes absent mean false)."""
    categories = [c.strip() for c in field(form, "categories").split(",") if c.strip()]
    sla_text = field(form, "sla")
    try:
        sla = json.loads(sla_text) if sla_text else {}
    except ValueError as exc:
        raise Invalid("the SLA policy is not valid JSON") from exc
    if not isinstance(sla, dict):
        raise Invalid("the SLA policy must be a JSON object")
    return {
        "disclose_subcontractors": field(form, "disclose_subcontractors") or "named",
        "share_requester_contacts": field(form, "share_requester_contacts") == "1",
        "allow_subdelegation": field(form, "allow_subdelegation") == "1",
        "auto_accept": field(form, "auto_accept") == "1",
        "categories": categories,
        "sla": sla,
    }
