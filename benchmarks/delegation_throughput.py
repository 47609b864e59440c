"""Messages per second between two node processes over RabbitMQ (one-level delegation).

    .venv/bin/python benchmarks/delegation_throughput.py --tickets 300 --runs 3

Two ``tix node serve`` processes on loopback, linked with ``auto_accept``. The upstream creates
and delegates N tickets through its HTTP API from several client threads; the downstream
accepts each offer automatically; the run ends when the upstream has seen every acceptance.
Each ticket costs two envelopes (offer down, accept up). Prints the median of the runs.
Bounded: at most ``--tickets`` tickets per run and ``--timeout`` seconds of waiting.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.nodes import (
    MACHINE_AMQP_URL,
    NodeProcess,
    delete_queues,
    eventually,
    link,
    run_id,
)


def one_run(tickets: int, threads: int, timeout: float) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix="tix-bench-"))
    suffix = run_id()
    acme = NodeProcess(f"bench-up-{suffix}", workdir)
    northwind = NodeProcess(f"bench-down-{suffix}", workdir)
    try:
        for node in (acme, northwind):
            node.init()
            node.start()
        link(acme, northwind, {"auto_accept": True})

        def delegate(i: int) -> None:
            number = acme.call("POST", "/api/v1/tickets", json={"title": f"Bench {i}"})["number"]
            acme.call(
                "POST",
                f"/api/v1/tickets/{number}/delegations",
                json={"partner": northwind.account_id},
            )

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(delegate, range(tickets)))
        api_done = time.perf_counter()

        def all_accepted() -> bool:
            page = acme.call("GET", "/api/v1/tickets", params={"status": "in_progress", "limit": 1})
            return bool(page["total"] >= tickets)

        eventually(all_accepted, timeout=timeout, interval=0.05, what="every acceptance")
        finished = time.perf_counter()
        elapsed = finished - started
        return {
            "tickets": tickets,
            "seconds": elapsed,
            "api_seconds": api_done - started,
            "tickets_per_s": tickets / elapsed,
            "messages_per_s": 2 * tickets / elapsed,
        }
    finally:
        acme.close()
        northwind.close()
        delete_queues(MACHINE_AMQP_URL, [acme.account_id, northwind.account_id])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=300)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    results = []
    for i in range(args.runs):
        result = one_run(min(args.tickets, 10_000), args.threads, args.timeout)
        results.append(result)
        print(
            f"run {i + 1}: {result['tickets']:.0f} tickets in {result['seconds']:.2f}s "
            f"(API {result['api_seconds']:.2f}s): {result['messages_per_s']:.0f} messages/s"
        )
    median = statistics.median(r["messages_per_s"] for r in results)
    tickets = statistics.median(r["tickets_per_s"] for r in results)
    print(f"median of {args.runs}: {median:.0f} messages/s, {tickets:.0f} tickets/s")


if __name__ == "__main__":
    main()
