"""Schemathesis against the node's own OpenAPI document: no ``/api/v1`` operation answers 5xx.

The schema is loaded from the running app (``/openapi.json``, in-process ASGI). Every
``/api/v1`` operation gets a bounded number of Hypothesis-generated requests (valid and
invalid by the schema) twice: as the admin and as a contact of one organisation. Path
parameters point at the node's real ticket, comment-free attachment and link half of the time,
so generated requests reach the handlers and not only the 404s. Checks: never a server error,
a success response validates against its documented schema, and every refusal is JSON with a
``detail`` (FastAPI documents 422 as a list of errors, but the node's own refusals carry a
string, so the schema of error responses is not checked).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from tests.hostile.world import World, world
from tests.support.db import database_url

MAX_EXAMPLES = 25


class Node:
    def __init__(self, w: World) -> None:
        self.world = w
        self.app = w.client._transport.app  # type: ignore[attr-defined]  # the ASGI app
        self.schema = schemathesis.openapi.from_asgi("/openapi.json", self.app).include(
            path_regex="^/api/v1/"
        )
        self.ids = {
            "number": w.tickets["Bank North"],
            "attachment_id": w.attachments["Bank North"],
        }


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, db_backend: str) -> Iterator[Node]:
    directory = tmp_path_factory.mktemp("openapi-fuzz")
    loop = asyncio.new_event_loop()
    with database_url(db_backend, directory, tables=True) as url:
        manager = world(url, directory / "node")
        try:
            w = loop.run_until_complete(manager.__aenter__())
            yield Node(w)
        finally:
            loop.run_until_complete(manager.__aexit__(None, None, None))
            loop.close()


def _operations() -> list[str]:
    # The operation list is static (the routers), so collect it from a throw-away app.
    import tempfile

    from account.app import create_app
    from account.config import Settings
    from account.context import Identity, NodeContext
    from account.db import make_engine
    from exchange.signing import generate_key

    with tempfile.TemporaryDirectory() as tmp:
        ctx = NodeContext(
            settings=Settings(account_id="acme", data_dir=Path(tmp)),
            engine=make_engine("sqlite://"),
            identity=Identity(account_id="acme", label="ACME", key=generate_key()),
            secret=b"s" * 48,
        )
        document = create_app(ctx).openapi()
        ctx.engine.dispose()
    return sorted(
        f"{method.upper()} {path}"
        for path, item in document["paths"].items()
        if path.startswith("/api/v1/")
        for method in item
    )


OPERATIONS = _operations()


def _operation(node: Node, label: str) -> Any:
    method, path = label.split(" ", 1)
    for result in node.schema.get_all_operations():
        operation = result.ok()
        if operation.method.upper() == method and operation.path == path:
            return operation
    raise AssertionError(f"{label} not in the node's OpenAPI document")


@pytest.mark.parametrize("role", ["root", "alice"])
@pytest.mark.parametrize("label", OPERATIONS)
def test_no_operation_answers_a_server_error(node: Node, label: str, role: str) -> None:
    operation = _operation(node, label)
    headers = node.world.auth(role)
    calls: list[int] = []

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def run(case: Any) -> None:
        calls.append(1)
        if case.path_parameters and len(calls) % 2 == 1:
            for name, value in node.ids.items():
                if name in case.path_parameters:
                    case.path_parameters[name] = value
        response = case.call(headers=headers)
        case.validate_response(response, checks=[not_a_server_error])
        if 200 <= response.status_code < 300:
            case.validate_response(response, checks=[response_schema_conformance])
        else:  # every refusal is JSON with a detail
            body = response.json()
            assert isinstance(body, dict) and "detail" in body, response.text[:200]

    run()
