"""Node processes for the benchmark: ``tix node init`` and ``tix node serve`` on loopback."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

PASSWORD = "bench-password"  # noqa: S105  (a throwaway node on loopback)
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def tix_command() -> list[str]:
    """How to run ``tix`` with this interpreter."""
    script = Path(sys.executable).with_name("tix")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from account.cli import main; main()"]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far (Linux ``/proc``; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (``VmHWM``) of a process in MiB (0 when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rss_mib(pid: int) -> float:
    """Current resident set size (``VmRSS``) in MiB (0 when unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Node:
    """One ``tix node serve`` process with its own SQLite database under ``workdir``."""

    account_id: str
    workdir: Path
    amqp_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    token: str = ""

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def data_dir(self) -> Path:
        return self.workdir / self.account_id

    @property
    def db_path(self) -> Path:
        return self.data_dir / f"{self.account_id}.db"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.account_id}.log"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("TIX_", "FI_"))}
        env.update(
            TIX_ACCOUNT_ID=self.account_id,
            TIX_DISPLAY_NAME=self.account_id,
            TIX_DATA_DIR=str(self.data_dir),
            TIX_AMQP_URL=self.amqp_url,
            TIX_PUBLIC_URL=self.base_url,
            TIX_LOG_LEVEL="WARNING",
        )
        env.update(self.extra_env)
        return env

    def init(self) -> None:
        subprocess.run(  # noqa: S603  (our own tix, fixed arguments)
            [*tix_command(), "node", "init", "--admin", "admin", "--password", PASSWORD],
            env=self.env(),
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(  # noqa: S603  (our own tix, fixed arguments)
                [*tix_command(), "node", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Until the node answers, its broker is up, and we hold an admin token."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.base_url, timeout=10.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.account_id} exited: {self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError, ValueError):
                    ready = client.get("/readyz")
                    if ready.status_code == 200 and ready.json().get("broker") == "up":
                        response = client.post(
                            "/api/v1/auth/token", data={"username": "admin", "password": PASSWORD}
                        )
                        response.raise_for_status()
                        self.token = str(response.json()["access_token"])
                        return
                time.sleep(0.1)
        raise RuntimeError(f"{self.account_id} not ready within {timeout}s: {self.log_tail()}")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"
