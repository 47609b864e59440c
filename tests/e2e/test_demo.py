"""``tix demo`` runs the whole four-level story and prints the chain, on both transports."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.support.nodes import TIX


@pytest.mark.parametrize("transport", ["inprocess", "amqp"])
def test_the_demo_runs_a_four_level_chain_to_the_end(
    transport: str, request: pytest.FixtureRequest
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIX_")}
    if transport == "amqp":
        env["TIX_AMQP_URL"] = request.getfixturevalue("amqp_url")
    result = subprocess.run(
        [TIX, "demo", "--transport", transport],
        env=env | {"COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert ("RabbitMQ" if transport == "amqp" else "in-process") in out.splitlines()[0]
    for level, company in enumerate(
        ["Northwind Services", "Southpole Field Ops", "Eastwood Electric"], start=1
    ):
        assert f"level {level}: {company} — delegation confirmed, ticket closed" in out
    assert "whole chain, created → confirmed" in out
    assert out.count("SLA met, resolve by 2") == 3  # every level's clocks ran and were met
    assert "Eastwood Electric took part by e-mail" in out  # the leaf answered by SMTP
    assert out.count("offer ") == 3
