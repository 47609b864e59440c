"""Structured logs (``TIX_LOG_FORMAT=json``) and the W3C ``traceparent`` they carry."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from account.observability import logs, tracing

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger writing through a JSON handler into a buffer (the root logger is left alone)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("tix.test-logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)


def lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_json_line_carries_the_ticket_delegation_message_and_trace(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    with (
        tracing.span(VALID) as span,
        logs.log_context(message_id="m-1", delegation_id="d-1", ticket=None),
        logs.request_scope({"path_params": {"number": "ACME-1042"}}),
    ):
        logger.warning("rejected %s", "it", extra={"reason": "bad_signature"})
    logger.info("outside")
    first, second = lines(stream)
    assert first["msg"] == "rejected it"
    assert first["level"] == "WARNING"
    assert first["logger"] == "tix.test-logging"
    assert first["ticket"] == "ACME-1042"
    assert first["delegation_id"] == "d-1"
    assert first["message_id"] == "m-1"
    assert first["reason"] == "bad_signature"
    assert first["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first["span_id"] == span.span_id
    assert str(first["ts"]).endswith("+00:00")
    assert set(second) == {"ts", "level", "logger", "msg"}, "no context leaks out of a block"


def test_json_escapes_hostile_values_and_records_exceptions(
    captured: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = captured
    with logs.log_context(message_id='x"\n{"level": "CRITICAL"}'):
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    (line,) = lines(stream)  # still one line: the newline was escaped
    assert line["level"] == "ERROR"
    assert line["message_id"] == 'x"\n{"level": "CRITICAL"}'
    assert "ValueError: boom" in str(line["exc"])


def test_the_text_format_appends_ids_and_leaves_out_values_that_would_break_the_line() -> None:
    formatter = logs.TextFormatter()
    record = logging.LogRecord("tix.x", logging.INFO, __file__, 1, "hello", None, None)
    with logs.log_context(message_id="abc-1", delegation_id="bad value\nFAKE LINE"):
        text = formatter.format(record)
    assert text.endswith("hello [message_id=abc-1]")
    assert "\n" not in text


def test_configure_sends_every_logger_through_one_json_handler() -> None:
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    stream = io.StringIO()
    try:
        logs.configure("debug", "json", stream=stream)
        logging.getLogger("uvicorn.error").warning("from uvicorn")
        logging.getLogger("tix.node").debug("from the node")
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in saved[0]:
            root.addHandler(handler)
        root.setLevel(saved[1])
    assert [(x["logger"], x["msg"]) for x in lines(stream)] == [
        ("uvicorn.error", "from uvicorn"),
        ("tix.node", "from the node"),
    ]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "junk",
        VALID.upper(),  # hex must be lower case
        VALID.replace("00-", "01-", 1),  # only version 00 is understood
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",  # all-zero trace id
        "00-4bf92f3577b34da6a3ce929d0e0e4736-" + "0" * 16 + "-01",  # all-zero span id
        VALID + "-extra",
        VALID[:-1],
    ],
)
def test_a_malformed_traceparent_is_ignored(value: str | None) -> None:
    assert tracing.parse(value) is None
    with tracing.span(value) as span:
        assert span.trace_id != "4bf92f3577b34da6a3ce929d0e0e4736"  # a new trace instead


def test_a_traceparent_round_trips_and_children_keep_the_trace() -> None:
    parsed = tracing.parse(VALID)
    assert parsed is not None and parsed.traceparent == VALID
    child = parsed.child()
    assert child.trace_id == parsed.trace_id and child.span_id != parsed.span_id
    assert tracing.parse(child.traceparent) == child
    roots = {tracing.new_trace().trace_id for _ in range(20)}
    assert len(roots) == 20
