"""docs/asyncapi.yaml is what ``python -m schemas.asyncapi`` generates, and it is an AsyncAPI 3
document whose every message payload is the envelope's JSON Schema plus its body's."""

from __future__ import annotations

import re
from typing import Any

import yaml

from exchange import transport
from schemas import asyncapi
from schemas.envelope import BODY_MODELS
from schemas.export import SCHEMA_DIR


def committed() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(asyncapi.DOC_PATH.read_text(encoding="utf-8"))
    return document


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_the_committed_document_is_the_generated_one() -> None:
    text = asyncapi.DOC_PATH.read_text(encoding="utf-8")
    assert text == asyncapi.render(asyncapi.generated()), (
        "docs/asyncapi.yaml is out of date: run `python -m schemas.asyncapi`"
    )


def test_it_has_the_required_asyncapi_3_structure() -> None:
    document = committed()
    assert re.fullmatch(r"3\.\d+\.\d+", document["asyncapi"])
    assert isinstance(document["info"]["title"], str) and document["info"]["title"]
    assert isinstance(document["info"]["version"], str) and document["info"]["version"]
    for server in document["servers"].values():
        assert server["host"] and server["protocol"] == "amqp"
    for name, channel in document["channels"].items():
        assert re.fullmatch(r"[A-Za-z0-9_\-]+", name)
        assert isinstance(channel["address"], str)
        for parameter in re.findall(r"\{([^}]+)\}", channel["address"]):
            assert parameter in channel["parameters"]
    for operation in document["operations"].values():
        assert operation["action"] in ("send", "receive")
        channel = resolve(document, operation["channel"]["$ref"])
        for message in operation["messages"]:
            # An operation's messages are the messages of its channel (AsyncAPI 3 rule).
            assert message["$ref"].startswith(operation["channel"]["$ref"] + "/messages/")
            assert resolve(document, message["$ref"]) in channel["messages"].values()
    for message_name in document["components"]["messages"]:
        assert re.fullmatch(r"[a-zA-Z0-9.\-_]+", message_name)
    for ref in refs(document):
        if ref.startswith("#/"):
            resolve(document, ref)


def test_every_message_type_has_a_message_whose_payload_is_its_json_schema() -> None:
    messages = committed()["components"]["messages"]
    assert set(messages) == set(BODY_MODELS)
    for name, message in messages.items():
        envelope_ref, specific = message["payload"]["allOf"]
        assert envelope_ref == {"$ref": "../schemas/json/envelope.schema.json"}
        assert specific["properties"]["type"] == {"const": name}
        body_ref = specific["properties"]["body"]["$ref"]
        assert body_ref == f"../schemas/json/{name}.schema.json"
        # The referenced files exist next to the document.
        for ref in (envelope_ref["$ref"], body_ref):
            target = (asyncapi.DOC_PATH.parent / ref).resolve()
            assert target.parent == SCHEMA_DIR.resolve() and target.is_file(), ref


def test_the_broker_names_are_the_transports() -> None:
    bindings = committed()["channels"]
    assert bindings["accountInbox"]["bindings"]["amqp"]["exchange"]["name"] == (
        transport.EXCHANGE_NAME
    )
    assert bindings["deadLetters"]["bindings"]["amqp"]["exchange"]["name"] == (
        transport.DEAD_EXCHANGE_NAME
    )
