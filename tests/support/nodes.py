"""Account nodes as separate ``tix node serve`` processes on loopback, driven over HTTP.

``NodeProcess`` runs ``tix node init`` once and ``tix node serve`` on a free port with its own
data directory, so a test can SIGKILL it and start it again over the same database. Every test
run gives its nodes fresh account ids (``run_id``), so runs never see each other's queues.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
from psycopg import sql

from tests.support.db import node_database_url
from tests.support.private_broker import free_port

PASSWORD = "node-password"
TIX = str(Path(sys.executable).with_name("tix"))
MACHINE_AMQP_URL = os.environ.get("TIX_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")

T = TypeVar("T")

NodeFactory = Callable[..., "NodeProcess"]


def run_id() -> str:
    return secrets.token_hex(3)


def eventually(
    probe: Callable[[], T | None], *, timeout: float = 30.0, interval: float = 0.05, what: str = ""
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}; last={last!r}")


class NodeProcess:
    """One node process and an HTTP client logged in as its admin."""

    def __init__(
        self,
        account_id: str,
        workdir: Path,
        *,
        amqp_url: str = MACHINE_AMQP_URL,
        database_url: str = "",
        label: str = "",
    ) -> None:
        self.account_id = account_id
        self.workdir = workdir
        self.amqp_url = amqp_url
        self.database_url = database_url
        self.label = label or account_id
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=15.0)
        self.log_path = workdir / f"{account_id}.log"
        self.starts = 0

    @property
    def db_url(self) -> str:
        """The node's database: ``database_url``, or the SQLite file in its data directory."""
        return (
            self.database_url or f"sqlite:///{self.workdir / self.account_id / self.account_id}.db"
        )

    def database_bytes(self) -> bytes:
        """What the node's database holds, for a leak check to search: its SQLite files (WAL
        included) byte for byte, or every table of its PostgreSQL database copied out in
        binary (text and bytea as stored, unescaped)."""
        if not self.database_url:
            files = sorted((self.workdir / self.account_id).glob("*.db*"))
            assert files, f"no database files for {self.account_id}"
            return b"".join(path.read_bytes() for path in files)
        out = bytearray()
        libpq = self.database_url.replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(libpq) as conn:
            tables = conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"
            ).fetchall()
            assert tables, f"no tables in {self.account_id}'s database"
            for (table,) in tables:
                query = sql.SQL("COPY {} TO STDOUT (FORMAT binary)").format(sql.Identifier(table))
                with conn.cursor().copy(query) as copy:
                    for chunk in copy:
                        out += chunk
        return bytes(out)

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TIX_", "FI_"))}
        env.update(
            TIX_ACCOUNT_ID=self.account_id,
            TIX_DISPLAY_NAME=self.label,
            TIX_DATA_DIR=str(self.workdir / self.account_id),
            TIX_DATABASE_URL=self.database_url,
            TIX_AMQP_URL=self.amqp_url,
            TIX_PUBLIC_URL=f"http://127.0.0.1:{self.port}",
            # Partners fetch large attachments from each other on loopback (B18: allowed only
            # when listed).
            TIX_EGRESS_ALLOW="127.0.0.0/8",
            TIX_RELAY_POLL_SECONDS="0.1",
            TIX_RELAY_MAX_BACKOFF_SECONDS="2",
            TIX_LOG_LEVEL="INFO",
        )
        env.update(extra or {})
        return env

    def init(self) -> None:
        subprocess.run(
            [TIX, "node", "init", "--admin", "admin", "--password", PASSWORD],
            env=self.env(),
            check=True,
            capture_output=True,
            timeout=60,
        )

    def start(self, extra_env: dict[str, str] | None = None, *, wait_broker: bool = True) -> None:
        """Start ``tix node serve`` and wait until it answers (and its broker is up)."""
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n--- start {self.starts} ---\n".encode())
        self.proc = subprocess.Popen(
            [TIX, "node", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env(extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        eventually(self._healthy, timeout=30, what=f"{self.account_id} to answer")
        self.login()
        if wait_broker:
            self.wait_broker()

    def _healthy(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"{self.account_id} exited: {self.log_tail()}")
        try:
            return self.client.get("/healthz").status_code == 200
        except httpx.HTTPError:
            return False

    def wait_broker(self, timeout: float = 30.0) -> None:
        def up() -> bool:
            return bool(self.client.get("/readyz").json().get("broker") == "up")

        eventually(up, timeout=timeout, what=f"{self.account_id} broker up")

    def login(self) -> None:
        response = self.client.post(
            "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
        )
        response.raise_for_status()
        self.client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def kill(self) -> None:
        """SIGKILL the process (no clean shutdown) and reap it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def wait_exit(self, timeout: float = 30.0) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout=timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def close(self) -> None:
        self.stop()
        self.client.close()

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"

    # -- API helpers --------------------------------------------------------------------------

    def call(
        self, method: str, path: str, expect: int | tuple[int, ...] = (200, 201), **kw: Any
    ) -> Any:
        response = self.client.request(method, path, **kw)
        codes = (expect,) if isinstance(expect, int) else expect
        assert response.status_code in codes, (
            f"{self.account_id} {method} {path} → {response.status_code} {response.text}"
        )
        return response.json() if response.content else None

    def ticket(self, number: str) -> dict[str, Any]:
        result: dict[str, Any] = self.call("GET", f"/api/v1/tickets/{number}")
        return result

    def tickets(self, **params: Any) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call(
            "GET", "/api/v1/tickets", params={"limit": 200, **params}
        )["items"]
        return items

    def rejected(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.call(
            "GET", "/api/v1/admin/rejected", params={"limit": 500}
        )["items"]
        return items

    def metric(self, name: str) -> float:
        text = self.client.get("/metrics").text
        total = 0.0
        for line in text.splitlines():
            if line.startswith(name):
                total += float(line.rsplit(" ", 1)[1])
        return total


def link(
    upstream: NodeProcess, downstream: NodeProcess, contract: dict[str, Any] | None = None
) -> str:
    """Invite and accept over HTTP; wait until the upstream has the link; return its id."""
    invite = upstream.call("POST", "/api/v1/links/invitations", json={"contract": contract or {}})
    downstream.call("POST", "/api/v1/links/accept", json={"token": invite["token"]})

    def linked() -> bool:
        links = upstream.call("GET", "/api/v1/links")["items"]
        return any(item["partner"] == downstream.account_id for item in links)

    eventually(linked, what=f"link {upstream.account_id} → {downstream.account_id}")
    return str(invite["link_id"])


def offered_ref(downstream: NodeProcess, upstream_ref: str) -> dict[str, Any] | None:
    """The downstream's ticket created from the upstream ticket ``upstream_ref``, if any."""
    for item in downstream.tickets():
        upstream = item.get("upstream") or {}
        if upstream.get("ref") == upstream_ref:
            return item
    return None


def delete_queues(url: str, accounts: list[str]) -> None:
    """Remove the test accounts' inboxes and dead-letter queues from the broker."""
    from exchange.amqp import AmqpTransport

    async def run() -> None:
        transport = AmqpTransport(url)
        with contextlib.suppress(Exception):
            await transport.connect()
            for account in accounts:
                await transport.delete_inbox(account)
        await transport.close()

    asyncio.run(run())


@contextlib.contextmanager
def node_factory(amqp_url: str, workdir: Path, backend: str) -> Iterator[NodeFactory]:
    """Node processes on ``amqp_url`` with run-unique account ids, each on a new database of
    ``backend`` ("sqlite": a file in its data directory, "postgresql": a throw-away database);
    on exit they stop, and their queues and databases are dropped."""
    suffix = run_id()
    started: list[NodeProcess] = []
    with ExitStack() as databases:

        def make(name: str, *, start: bool = True, **kwargs: object) -> NodeProcess:
            kwargs.setdefault("amqp_url", amqp_url)
            if not kwargs.get("database_url"):
                kwargs["database_url"] = node_database_url(backend, databases)
            node = NodeProcess(f"{name}-{suffix}", workdir, **kwargs)  # type: ignore[arg-type]
            node.init()
            started.append(node)
            if start:
                node.start()
            return node

        try:
            yield make
        finally:
            for node in started:
                node.close()
            delete_queues(amqp_url, [node.account_id for node in started])
