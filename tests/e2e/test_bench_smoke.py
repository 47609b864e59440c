"""``tix bench`` keeps working: a tiny run end to end on the machine's RabbitMQ (no timings)."""

from __future__ import annotations

import json
import os
import subprocess

from tests.support.nodes import TIX


def test_tix_bench_runs_the_chain_and_the_raw_baseline_and_reports_json(amqp_url: str) -> None:
    env = {**os.environ, "TIX_AMQP_URL": amqp_url}
    done = subprocess.run(
        [TIX, "bench", "--tickets", "3", "--raw-messages", "30", "--timeout", "90", "--json"],
        env=env,
        capture_output=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
    result = json.loads(done.stdout)
    tix = result["tix"]
    assert tix["tickets"] == 3
    # Every ticket went down three hops and the confirmation came back to the leaf.
    assert tix["offer_hop_ms"]["n"] == 9
    assert set(tix["offer_hop_ms_by_hop"]) == {"L0→L1", "L1→L2", "L2→L3"}
    assert tix["leaf_to_origin_ms"]["n"] == 3
    assert tix["messages_by_type"]["delegation.offer"] == 9
    assert tix["messages_by_type"]["resolution.confirm"] == 9
    assert [node["level"] for node in tix["nodes"]] == [0, 1, 2, 3]
    assert all(node["peak_rss_mib"] > 0 and node["cpu_seconds"] >= 0 for node in tix["nodes"])
    for raw in result["raw"].values():
        assert raw["messages"] == 30
        assert raw["messages_per_s"] > 0
    assert result["ratio"]["tix_over_raw_confirm_each"] > 0
