"""Polling an existing mailbox over IMAP (``TIX_IMAP_URL``, e.g. ``imaps://user:pw@host/INBOX``).

Each round logs in, selects the folder, and for every message without ``\\Seen`` fetches it with
``BODY.PEEK[]`` (fetching does not mark it), hands it to the inbound processor, and only then
flags it ``\\Seen``. A crash between the two means the message is fetched again next round;
the processor drops it by its Message-ID, so nothing is applied twice. imaplib runs in a worker
thread, with a socket timeout.
"""

from __future__ import annotations

import asyncio
import imaplib
import logging
import re
import ssl
from collections.abc import Callable

from adapters.email.inbound import Outcome
from adapters.email.settings import Endpoint

log = logging.getLogger("tix.email.imap")

TIMEOUT = 30.0
BATCH = 50

Process = Callable[[bytes, str | None, tuple[str, ...]], Outcome]


def poll_once(server: Endpoint, process: Process) -> int:
    """One round: process every unseen message and flag it; return how many."""
    client: imaplib.IMAP4
    if server.scheme == "imaps":
        client = imaplib.IMAP4_SSL(
            server.host, server.port, ssl_context=ssl.create_default_context(), timeout=TIMEOUT
        )
    else:
        client = imaplib.IMAP4(server.host, server.port, timeout=TIMEOUT)
    try:
        client.login(server.username, server.password)
        status, _ = client.select(server.path or "INBOX")
        if status != "OK":
            raise imaplib.IMAP4.error(f"cannot select {server.path or 'INBOX'}")
        status, data = client.uid("SEARCH", "UNSEEN")
        if status != "OK":
            raise imaplib.IMAP4.error("search failed")
        uids = (data[0] or b"").split()[:BATCH]
        done = 0
        for uid in uids:
            if not re.fullmatch(rb"\d+", uid):
                continue
            status, parts = client.uid("FETCH", uid.decode(), "(BODY.PEEK[])")
            raw = next(
                (p[1] for p in parts if isinstance(p, tuple) and isinstance(p[1], bytes)), None
            )
            if status != "OK" or raw is None:
                continue
            process(raw, None, ())
            client.uid("STORE", uid.decode(), "+FLAGS.SILENT", "(\\Seen)")
            done += 1
        return done
    finally:
        try:
            client.logout()
        except Exception:  # noqa: S110  (the connection is going away anyway)
            pass


async def poll_loop(server: Endpoint, process: Process, *, interval: float) -> None:
    failures = 0
    while True:
        try:
            await asyncio.to_thread(poll_once, server, process)
            failures = 0
            await asyncio.sleep(interval)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            log.warning("IMAP poll failed (%s): %s", failures, exc)
            await asyncio.sleep(min(300.0, interval * 2 ** min(failures, 6)))
