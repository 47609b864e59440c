"""Imports point one way (schemas ← exchange ← account ← adapters); domain rules stay pure."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ["schemas", "exchange", "account", "adapters"]
# Plain-Python domain modules: no web framework, broker client or database in them.
PURE = [
    "account/tickets/states.py",
    "account/delegations/chain.py",
    "account/sla/calendar.py",
    "account/sla/clocks.py",
]
FRAMEWORKS = ("fastapi", "starlette", "aio_pika", "aiormq", "sqlmodel", "sqlalchemy", "httpx")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_imports_only_itself_and_the_layers_below_it(layer: str) -> None:
    above = set(LAYERS[LAYERS.index(layer) + 1 :])
    offenders = [
        f"{path.relative_to(ROOT)} imports {name}"
        for path in sorted((ROOT / layer).rglob("*.py"))
        for name in imported_modules(path)
        if name.split(".")[0] in above
    ]
    assert offenders == []


@pytest.mark.parametrize("module", PURE)
def test_domain_rules_import_no_framework_broker_or_database(module: str) -> None:
    names = imported_modules(ROOT / module)
    assert [n for n in names if n.split(".")[0] in FRAMEWORKS] == []
