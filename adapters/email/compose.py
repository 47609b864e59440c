"""Outbound mails: text and HTML parts from the Jinja2 templates, threading and loop headers.

Every mail carries ``Auto-Submitted: auto-generated`` and the loop header
(``loops.outbound_headers``), a Message-ID that carries the delegation's reply token, and
``In-Reply-To``/``References`` to the earlier mails of the same delegation, so mail clients
thread them and a reply finds its way back even when sent to the wrong address. Replies go to
the delegation's own address ``<local>+<token>@<domain>``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from adapters.email import tokens
from adapters.email.loops import outbound_headers
from exchange.clock import utcnow

TEMPLATES = Path(__file__).with_name("templates")
LANGUAGES = ("en", "ru")

_SUBJECTS: dict[str, dict[str, str]] = {
    "en": {
        "welcome": "Welcome to {upstream}'s tickets",
        "offer": "New ticket: {title}",
        "update": "Ticket changed: {title}",
        "recall": "Ticket withdrawn: {title}",
        "rework": "Please rework: {title}",
        "confirm": "Resolution confirmed: {title}",
        "comment": "Comment: {title}",
        "notice": "Your mail was not applied",
    },
    "ru": {
        "welcome": "Подключение к заявкам {upstream}",
        "offer": "Новая заявка: {title}",
        "update": "Заявка изменена: {title}",
        "recall": "Заявка отозвана: {title}",
        "rework": "Требуется доработка: {title}",
        "confirm": "Выполнение подтверждено: {title}",
        "comment": "Комментарий: {title}",
        "notice": "Ваше письмо не принято",
    },
}

_env = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class Composed:
    message_id: str
    recipients: list[str]
    raw: bytes
    reply_to: str


@dataclass
class Thread:
    """Where a mail belongs: its delegation (for the reply address) and earlier Message-IDs."""

    delegation_id: str | None = None
    number: str | None = None
    earlier: list[str] = field(default_factory=list)


def render_text(kind: str, language: str, values: dict[str, Any]) -> str:
    lang = language if language in LANGUAGES else "en"
    defaults = {
        "site": "",
        "equipment": "",
        "note": "",
        "reason": "",
        "addendum": "",
        "priority_changed": False,
        "description": "",
        "author": "",
        "body": "",
        "about": "",
        "problem": "",
        "comment_kept": False,
        "mismatch": False,
        "name": "",
        "number": "",
        "title": "",
        "priority": "",
        "upstream": "",
        "participant": "",
    }
    return _env.get_template(f"{lang}.txt").render(defaults | values | {"kind": kind})


def subject_for(kind: str, language: str, values: dict[str, Any], number: str | None) -> str:
    lang = language if language in LANGUAGES else "en"
    text = _SUBJECTS[lang][kind].format(
        title=str(values.get("title", ""))[:150], upstream=values.get("upstream", "")
    )
    return f"[{number}] {text}" if number else text


def compose(
    *,
    kind: str,
    language: str,
    values: dict[str, Any],
    to: list[str],
    from_name: str,
    domain: str,
    local: str,
    secret: bytes,
    adapter_id: str,
    thread: Thread,
) -> Composed:
    """Render and build one mail (not sent: the caller queues ``raw``)."""
    text = render_text(kind, language, values)
    subject = subject_for(kind, language, values, thread.number)
    unique = secrets.token_urlsafe(12)
    if thread.delegation_id:
        message_id = tokens.make_message_id(domain, thread.delegation_id, secret, unique)
        reply_to = tokens.make_reply_address(local, domain, thread.delegation_id, secret)
    else:
        message_id = f"<tix.{unique}@{domain}>"
        reply_to = f"{local}@{domain}"
    msg = EmailMessage()
    msg["From"] = formataddr((from_name, f"{local}@{domain}"))
    msg["To"] = ", ".join(to)
    msg["Reply-To"] = reply_to
    msg["Subject"] = subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = message_id
    if thread.earlier:
        msg["In-Reply-To"] = thread.earlier[-1]
        msg["References"] = " ".join(thread.earlier[-20:])
    for name, value in outbound_headers(adapter_id).items():
        msg[name] = value
    msg.set_content(text, charset="utf-8")
    paragraphs = [p for p in text.split("\n\n") if p.strip()]
    html = _env.get_template("mail.html").render(
        language=language, subject=subject, paragraphs=paragraphs
    )
    msg.add_alternative(html, subtype="html", charset="utf-8")
    return Composed(
        message_id=message_id,
        recipients=list(to),
        raw=msg.as_bytes(policy=policy.SMTP),
        reply_to=reply_to,
    )
