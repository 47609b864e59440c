"""Real mail servers for the e-mail adapter's tests, on loopback.

- ``SmtpSink``: an aiosmtpd server in a thread, playing the remote MTA the adapter delivers to;
  it keeps every message it accepted and can be stopped and started again on the same port.
- ``Dovecot``: Debian's Dovecot IMAP server with its own config, users file and maildirs under
  a temporary directory, on a free port; started in the foreground by the test and stopped by
  its pid (never the system service).
- ``AdapterProcess``: ``tix adapter email serve`` as a separate process, like ``NodeProcess``.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import os
import pwd
import shutil
import signal
import smtplib
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.nodes import TIX, NodeProcess, eventually
from tests.support.private_broker import free_port, port_open, skip_or_fail


@dataclass(frozen=True)
class Received:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes

    @property
    def message(self) -> EmailMessage:
        msg = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        return msg

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        assert part is not None
        return str(part.get_content())  # type: ignore[attr-defined]


class _Collector:
    def __init__(self) -> None:
        self.messages: list[Received] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        with self.lock:
            self.messages.append(
                Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(raw))
            )
        return "250 OK"


class SmtpSink:
    """An SMTP server that accepts everything and keeps it (the participants' mailboxes)."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.collector = _Collector()
        self.controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.controller = Controller(
            self.collector, hostname="127.0.0.1", port=self.port, ready_timeout=10
        )
        self.controller.start()

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[Received]:
        with self.collector.lock:
            return list(self.collector.messages)

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]


def send_mail(port: int, mail: EmailMessage | bytes, mail_from: str, rcpt_to: list[str]) -> None:
    """Deliver a mail to an SMTP server on loopback (the participant's reply), CRLF lines."""
    raw = mail.as_bytes(policy=email.policy.SMTP) if isinstance(mail, EmailMessage) else mail
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(mail_from, rcpt_to, raw)


def reply_to(
    original: Received,
    *,
    sender: str,
    text: str,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    message_id: str | None = None,
) -> EmailMessage:
    """A reply to ``original`` as a mail client writes it: Re: subject, threading, quote."""
    msg = original.message
    reply = EmailMessage()
    reply["From"] = sender
    reply["To"] = str(msg["Reply-To"])
    reply["Subject"] = "Re: " + str(msg["Subject"])
    reply["Message-ID"] = message_id or email.utils.make_msgid(domain="client.example")
    reply["In-Reply-To"] = str(msg["Message-ID"])
    reply["References"] = str(msg["Message-ID"])
    quoted = "\n".join("> " + line for line in original.text().splitlines())
    reply.set_content(f"{text}\n\nOn Mon, 1 Dec 2025 at 10:00, Tix wrote:\n{quoted}\n")
    for filename, ctype, data in attachments:
        maintype, subtype = ctype.split("/", 1)
        reply.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return reply


class Dovecot:
    """A private Dovecot IMAP server: config, users and maildirs in a fresh directory.

    The directory is made under /tmp with mode 0755 (pytest's own are 0700, which Dovecot's
    unprivileged processes cannot enter) and removed again by ``stop``.
    """

    def __init__(self, *, user: str = "tix", password: str = "imap-secret") -> None:  # noqa: S107
        self.root = Path(tempfile.mkdtemp(prefix="tix-dovecot-", dir="/tmp"))
        self.user = user
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"imap://{self.user}:{self.password}@127.0.0.1:{self.port}/INBOX"

    def _config(self) -> str:
        if os.geteuid() == 0:
            internal, login = "dovecot", "dovenull"
            mail_user = pwd.getpwnam("dovecot")
        else:
            internal = login = pwd.getpwuid(os.geteuid()).pw_name
            mail_user = pwd.getpwuid(os.geteuid())
        for sub in ("mail", "home"):
            path = self.root / sub
            path.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                os.chown(path, mail_user.pw_uid, mail_user.pw_gid)
        r = self.root
        return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {r}/run
state_dir = {r}/state
log_path = {r}/dovecot.log
info_log_path = {r}/dovecot.log
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:{r}/mail/%u
default_internal_user = {internal}
default_internal_group = {internal}
default_login_user = {login}
first_valid_uid = {min(mail_user.pw_uid, 100)}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {r}/users
}}
userdb {{
  driver = static
  args = uid={mail_user.pw_uid} gid={mail_user.pw_gid} home={r}/home/%u
}}
service imap-login {{
  chroot =
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service anvil {{
  chroot =
}}
service stats {{
  unix_listener stats-reader {{
    mode = 0666
  }}
  unix_listener stats-writer {{
    mode = 0666
  }}
}}
"""

    def start(self) -> None:
        binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
        if not Path(binary).exists():
            skip_or_fail("Dovecot is not installed (apt-get install dovecot-imapd)")
        self.root.mkdir(parents=True, exist_ok=True)
        self.root.chmod(0o755)
        (self.root / "users").write_text(f"{self.user}:{{PLAIN}}{self.password}\n")
        conf = self.root / "dovecot.conf"
        conf.write_text(self._config())
        log = (self.root / "stdout.log").open("wb")
        self.proc = subprocess.Popen(
            [binary, "-F", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
        )
        log.close()
        eventually(self._answers, timeout=30, what="Dovecot to answer")

    def _answers(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(f"dovecot exited: {self.log_tail()}")
        return port_open(self.port)

    def log_tail(self) -> str:
        text = ""
        for name in ("stdout.log", "dovecot.log"):
            path = self.root / name
            if path.exists():
                text += path.read_text(errors="replace")[-3000:]
        return text

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)

    def client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        try:
            client.login(self.user, self.password)
            client.select("INBOX")
        except BaseException:
            client.shutdown()
            raise
        return client

    def append(self, raw: bytes) -> None:
        client = self.client()
        try:
            status, _ = client.append("INBOX", None, None, raw)
            assert status == "OK"
        finally:
            client.logout()

    def unseen(self) -> int:
        client = self.client()
        try:
            _, data = client.uid("SEARCH", "UNSEEN")
            return len((data[0] or b"").split())
        finally:
            client.logout()


class AdapterProcess(NodeProcess):
    """``tix adapter email serve`` in its own process (an ordinary node plus the adapter)."""

    def __init__(self, account_id: str, workdir: Path, **kwargs: Any) -> None:
        self.mail_env: dict[str, str] = kwargs.pop("mail_env", {})
        super().__init__(account_id, workdir, **kwargs)
        self.smtp_listen_port = free_port()

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        env = super().env()
        env.update(
            TIX_MAIL_DOMAIN="mail.tix.test",
            TIX_SMTP_LISTEN=f"127.0.0.1:{self.smtp_listen_port}",
            TIX_MAIL_POLL_SECONDS="0.1",
            TIX_MAIL_MAX_BACKOFF_SECONDS="1",
            TIX_IMAP_POLL_SECONDS="0.3",
        )
        env.update(self.mail_env)
        env.update(extra or {})
        return env

    def start(self, extra_env: dict[str, str] | None = None, *, wait_broker: bool = True) -> None:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n--- start {self.starts} ---\n".encode())
        self.proc = subprocess.Popen(
            [TIX, "adapter", "email", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env(extra_env),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        eventually(self._healthy, timeout=30, what=f"{self.account_id} to answer")
        self.login()
        if wait_broker:
            self.wait_broker()
        eventually(lambda: port_open(self.smtp_listen_port), timeout=30, what="the SMTP listener")
