"""Named crash points for fault-injection tests (RELIABILITY: "Named crash points").

``crash_point("after_commit_before_publish")`` kills the process with SIGKILL when fault
injection is enabled (``TIX_FAULT_INJECTION=1``) and ``FI_CRASH_AT`` names that point. In any
other configuration it does nothing, so the hooks cost one dictionary lookup in production.
"""

from __future__ import annotations

import os
import signal

POINTS = frozenset(
    {
        "before_commit",
        "after_commit_before_publish",
        "after_publish_before_confirm",
        "after_confirm_before_mark_sent",
        "consumer_after_commit_before_ack",
        "consumer_before_commit",
        "email_after_parse_before_commit",
    }
)


_passed: dict[str, int] = {}


def crash_point(name: str) -> None:
    """SIGKILL this process here if a fault-injection test asked for it.

    ``FI_CRASH_SKIP=N`` lets the point pass ``N`` times first, so a process under load dies in
    the middle of its traffic rather than on its first message.
    """
    if name not in POINTS:
        raise ValueError(f"unknown crash point {name}")
    if os.environ.get("TIX_FAULT_INJECTION") == "1" and os.environ.get("FI_CRASH_AT") == name:
        passed = _passed.get(name, 0)
        if passed < int(os.environ.get("FI_CRASH_SKIP") or 0):
            _passed[name] = passed + 1
            return
        os.kill(os.getpid(), signal.SIGKILL)
