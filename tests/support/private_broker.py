"""A private RabbitMQ node on its own ports and data directory, for fault tests.

Started exactly as ``shared/design/RELIABILITY.md`` ("Common harness") shows: the Debian
wrapper switches to user ``rabbitmq``, so the run directory is handed to that user, and every
``rabbitmqctl`` call names the private node explicitly. The machine's broker
(``rabbit@localhost`` on 5672) is never addressed: the node gets its own config file, which
replaces ``/etc/rabbitmq/rabbitmq.conf`` and its 5672 listener.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import NoReturn

import pytest

MACHINE_NODE = "rabbit@localhost"
MACHINE_PORT = 5672
MACHINE_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
CTL_TIMEOUT = 90.0


class PrivateBrokerError(RuntimeError):
    """A private broker command failed or timed out."""


def machine_amqp_url() -> str:
    """The machine's broker, unless ``TIX_TEST_AMQP_URL`` names another."""
    return os.environ.get("TIX_TEST_AMQP_URL", MACHINE_AMQP_URL)


def skip_or_fail(message: str) -> NoReturn:
    """Skip a test whose service is missing; on CI (``CI=true``) fail it instead."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message} (CI=true: this service is required on CI)")
    pytest.skip(message)


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class PrivateBroker:
    """One private RabbitMQ node; see the module docstring."""

    def __init__(
        self,
        run_dir: Path,
        node_name: str,
        port: int,
        dist_port: int,
        *,
        management_port: int | None = None,
        plugins: tuple[str, ...] = (),
    ) -> None:
        if node_name == MACHINE_NODE or port == MACHINE_PORT:
            raise ValueError("the private broker must not reuse the machine broker's node or port")
        if "@" not in node_name:
            node_name = f"{node_name}@localhost"
        self.run_dir = run_dir
        self.node_name = node_name
        self.port = port
        self.dist_port = dist_port
        # With a port, the node runs the management plugin (HTTP API) on 127.0.0.1 there.
        self.management_port = management_port
        # Further plugins to enable (e.g. ``rabbitmq_shovel``), written to enabled_plugins.
        self.plugins = plugins
        self.start_seconds: float | None = None

    @property
    def url(self) -> str:
        """The AMQP URL of this node."""
        return f"amqp://guest:guest@127.0.0.1:{self.port}/"

    @property
    def management_url(self) -> str:
        """The management HTTP API's base URL (only with a ``management_port``)."""
        if self.management_port is None:
            raise PrivateBrokerError("this node runs without the management plugin")
        return f"http://127.0.0.1:{self.management_port}"

    @property
    def pid_file(self) -> Path:
        return self.run_dir / "pid"

    def _env(self) -> dict[str, str]:
        """The environment every server and rabbitmqctl call gets (it names the node)."""
        env = dict(os.environ)
        env.update(
            {
                "RABBITMQ_NODENAME": self.node_name,
                "RABBITMQ_NODE_PORT": str(self.port),
                "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(self.run_dir / "mnesia"),
                "RABBITMQ_LOG_BASE": str(self.run_dir / "log"),
                # The variable names the config file without its ".conf" extension.
                "RABBITMQ_CONFIG_FILE": str(self.run_dir / "rabbitmq"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.run_dir / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(self.pid_file),
            }
        )
        return env

    def _run(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """Run one broker command with this node's environment and a timeout."""
        try:
            done = subprocess.run(
                list(args),
                env=self._env(),
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise PrivateBrokerError(f"{' '.join(args)} timed out after {timeout}s") from exc
        if done.returncode != 0:
            raise PrivateBrokerError(
                f"{' '.join(args)} exited {done.returncode}: {done.stdout}{done.stderr}"
            )
        return done.stdout

    def ctl(self, *args: str, timeout: float = CTL_TIMEOUT) -> str:
        """Run ``rabbitmqctl -n <node> ARGS`` against this node only."""
        return self._run("rabbitmqctl", "-n", self.node_name, *args, timeout=timeout)

    def _prepare_run_dir(self) -> None:
        """Write config and plugin files and hand the run dir to user rabbitmq."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        config = (
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "loopback_users = none\n"
            "log.console = false\n"
        )
        enabled = list(self.plugins)
        if self.management_port is not None:
            config += "management.tcp.ip = 127.0.0.1\n"
            config += f"management.tcp.port = {self.management_port}\n"
            enabled.insert(0, "rabbitmq_management")
        (self.run_dir / "rabbitmq.conf").write_text(config)
        (self.run_dir / "enabled_plugins").write_text(f"[{','.join(enabled)}].\n")
        for sub in ("mnesia", "log"):
            (self.run_dir / sub).mkdir(exist_ok=True)
        # The Debian wrapper runs the server as user rabbitmq.
        user = pwd.getpwnam("rabbitmq")
        for path in [self.run_dir, *self.run_dir.rglob("*")]:
            os.chown(path, user.pw_uid, user.pw_gid)

    def _launch(self) -> None:
        """Start the node detached and wait until it is up, recording how long it took."""
        if port_open(self.port):
            raise PrivateBrokerError(f"port {self.port} is already in use")
        began = time.monotonic()
        self._run("rabbitmq-server", "-detached", timeout=60)
        self.ctl("wait", "--timeout", "60", str(self.pid_file), timeout=75)
        self.start_seconds = time.monotonic() - began

    def start(self) -> None:
        """Create the run dir and start the node."""
        self._prepare_run_dir()
        self._launch()

    def stop_app(self) -> None:
        """Stop the RabbitMQ application (the Erlang node keeps running)."""
        self.ctl("stop_app")

    def start_app(self) -> None:
        """Start the RabbitMQ application again after ``stop_app``."""
        self.ctl("start_app")
        self.ctl("await_startup", "--timeout", "60", timeout=75)

    def _pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def kill9(self) -> None:
        """Kill the node's Erlang VM with SIGKILL (a crash, no clean shutdown)."""
        pid = self._pid()
        if pid is None:
            raise PrivateBrokerError("no pid file; is the node running?")
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not _alive(pid) and not port_open(self.port):
                return
            time.sleep(0.1)
        raise PrivateBrokerError(f"pid {pid} still alive 30 s after SIGKILL")

    def restart(self) -> None:
        """Start the node again on the same data directory (after ``kill9`` or ``stop``)."""
        self._launch()

    def stop(self) -> None:
        """Shut the node down (SIGKILL if it does not stop) and remove its run dir."""
        pid = self._pid()
        try:
            if pid is not None and _alive(pid):
                self.ctl("stop", str(self.pid_file), timeout=60)
        except PrivateBrokerError:
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)
        finally:
            shutil.rmtree(self.run_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
