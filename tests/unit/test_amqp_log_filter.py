"""aiormq's warning about a channel closed after a cancelled RPC is routine for Tix (it cancels
consumers on purpose), so it is logged at DEBUG; other aiormq warnings stay warnings."""

from __future__ import annotations

import logging

import pytest

import exchange.amqp  # noqa: F401  (installs the filter)


def test_a_cancelled_channel_rpc_is_debug_and_other_warnings_stay(
    caplog: pytest.LogCaptureFixture,
) -> None:
    channel_log = logging.getLogger("aiormq.channel")
    with caplog.at_level(logging.WARNING, logger="aiormq.channel"):
        channel_log.warning("Closing channel %r because RPC call %s cancelled", "<ch 2>", "Open")
        channel_log.warning(
            "Closing channel %r locally because RPC call %s cancelled before Channel.Open was sent",
            "<ch 3>",
            "Open",
        )
        channel_log.warning("Channel %r closed by the broker: %s", "<ch 4>", "404")
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "Channel '<ch 4>' closed by the broker: 404")
    ]
    with caplog.at_level(logging.DEBUG, logger="aiormq.channel"):
        caplog.clear()
        channel_log.warning("Closing channel %r because RPC call %s cancelled", "<ch 5>", "Open")
    assert [r.levelname for r in caplog.records] == ["DEBUG"]
