"""Delivery status notifications (RFC 3464): who failed, how, and which mail of ours it was.

A DSN is ``multipart/report; report-type=delivery-status``: a human-readable part, a
``message/delivery-status`` part (a per-message block, then one block per recipient with
``Final-Recipient``, ``Action``, ``Status``, ``Diagnostic-Code``) and the returned message or its
headers, whose Message-ID names the mail that bounced. ``message/global-delivery-status``
(RFC 6533, UTF-8 addresses) is read the same way.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import HeaderParser

from adapters.email.addresses import decode_words
from adapters.email.mime import decode_bytes, header_value, msg_ids, payload_bytes, subparts

__all__ = ["DeliveryReport", "read_reports"]


@dataclass(frozen=True, slots=True)
class DeliveryReport:
    """One recipient's entry of a DSN (RFC 3464)."""

    recipient: str | None
    action: str
    status: str | None = None
    diagnostic: str | None = None

    @property
    def failed(self) -> bool:
        return self.action == "failed"


def _status_blocks(part: Message) -> list[Message]:
    blocks = subparts(part)
    if part.get_content_type() == "message/delivery-status" and blocks:
        return blocks
    # message/global-delivery-status parses as one message: the first block is its header,
    # the other blocks are its body text.
    if blocks:
        first, text = [blocks[0]], decode_bytes(payload_bytes(blocks[0]), "utf-8")
    else:
        first, text = [], decode_bytes(payload_bytes(part), "utf-8")
    parser = HeaderParser(policy=policy.compat32)
    chunks = re.split(r"\r?\n\s*\r?\n", text.strip())
    return first + [parser.parsestr(chunk.strip() + "\n") for chunk in chunks if chunk.strip()]


def _typed_address(value: str | None) -> str | None:
    """``rfc822; bob@example.org`` -> ``bob@example.org``."""
    if not value:
        return None
    kind, sep, address = value.partition(";")
    text = (address if sep else kind).strip().strip("<>").strip()
    return text.lower() or None


def read_reports(msg: Message) -> tuple[tuple[DeliveryReport, ...], str | None]:
    """The per-recipient reports of a DSN and the Message-ID of the returned mail."""
    if msg.get_content_type() != "multipart/report" or not msg.is_multipart():
        return (), None
    reports: list[DeliveryReport] = []
    bounced_id: str | None = None
    for part in subparts(msg)[1:]:
        ctype = part.get_content_type()
        if ctype in ("message/delivery-status", "message/global-delivery-status"):
            for block in _status_blocks(part)[1:]:  # the first block is per-message
                recipient = _typed_address(
                    header_value(block, "Final-Recipient")
                    or header_value(block, "Original-Recipient")
                )
                action = (header_value(block, "Action") or "").strip().lower() or "unknown"
                status = header_value(block, "Status")
                diagnostic = header_value(block, "Diagnostic-Code")
                reports.append(
                    DeliveryReport(
                        recipient=recipient,
                        action=action,
                        status=status.split()[0] if status and status.split() else None,
                        diagnostic=decode_words(diagnostic) if diagnostic else None,
                    )
                )
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/global-headers"):
            original = _original_headers(part)
            ids = msg_ids(header_value(original, "Message-ID")) if original else []
            bounced_id = ids[0] if ids else bounced_id
    return tuple(reports), bounced_id


def _original_headers(part: Message) -> Message | None:
    payload = part.get_payload()
    if isinstance(payload, list):
        return payload[0] if payload and isinstance(payload[0], Message) else None
    return HeaderParser(policy=policy.compat32).parsestr(decode_bytes(payload_bytes(part), "utf-8"))
