"""Raw inbound mail to an ``InboundMail``: caps first, then the facts the adapter decides on.

``parse_inbound`` never raises for anything a sender can put in a mail. It refuses a mail that
breaks a cap before the standard-library parser runs (``prescan``), then parses with the
``compat32`` policy (plain strings, no header registry: that registry is the slow path on huge
address lists) and extracts:

- the sender (strict: ``addresses.parse_mailbox``; ambiguous or several ``From`` refuse it),
  To/Cc addresses and those that carry a reply token, Message-ID, In-Reply-To, References,
  the subject and its ``[ACME-1042]`` tag;
- the body text and the attachments (``bodies``: text/plain preferred, HTML converted, files
  from every alternative, charsets decoded with errors replaced);
- the signals ``loops.classify`` decides on: auto-reply headers, DSN delivery reports
  (``dsn``), null Return-Path, our loop header, hop count, DKIM ``l=`` tags,
  Authentication-Results.

The body walk and the DSN reading are guarded on their own: when the body cannot be walked,
the text after the header block is used as is (``defects`` says so), so a strange mail still
becomes a comment. Anything else that fails, which the fuzz tests have not found, refuses the
mail as ``unparseable`` rather than raising. ``dedupe_key`` is the Message-ID when there is
one (an IMAP re-fetch), else a SHA-256 of the raw bytes.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Literal

from adapters.email import tokens
from adapters.email.addresses import AddressError, decode_words, parse_address_list, parse_mailbox
from adapters.email.bodies import Attachment, raw_body_text, read_body
from adapters.email.dsn import DeliveryReport, read_reports
from adapters.email.mime import header_value, header_values, msg_ids
from adapters.email.prescan import DEFAULT_CAPS, CapReason, Caps, prescan

__all__ = [
    "LOOP_HEADER",
    "Attachment",
    "DeliveryReport",
    "InboundMail",
    "RejectReason",
    "SenderProblem",
    "parse_inbound",
]

LOOP_HEADER = "X-Tix-Loop"
"""Set on every mail the adapter sends; a mail that arrives carrying it is our own, echoed."""

RejectReason = CapReason | Literal["too_many_recipients", "unparseable"]
SenderProblem = Literal["no_sender", "ambiguous_sender", "invalid_sender"]

_MAX_REFERENCES = 50
_MAX_HOPS = 30
# A ticket number: the account id in capitals (letters, digits, dashes), a dash, digits.
_SUBJECT_TAG = re.compile(r"\[([A-Za-z][A-Za-z0-9-]{0,62}-[0-9]{1,9})\]")
_AUTO_HEADERS = ("X-Autoreply", "X-Autorespond", "X-Autoreply-From", "X-Mail-Autoreply")
_AUTO_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})
_AUTO_SUBJECT = re.compile(
    r"^\s*(automatic reply|auto(matic)?[ -]?reply|auto[ -]?response|out of (the )?office"
    r"( autoreply)?|автоматический ответ|автоответ|нет на месте|вне офиса)\s*:",
    re.IGNORECASE,
)
_BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"})
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|delivery failure|returned mail|failure notice"
    r"|mail delivery failed|не доставлено|недоставлен|не удалось доставить",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class InboundMail:
    """What the adapter needs to know about one inbound mail; see the module docstring."""

    dedupe_key: str
    rejected: RejectReason | None = None
    sender: str | None = None
    sender_name: str = ""
    sender_problem: SenderProblem | None = None
    recipients: tuple[str, ...] = ()
    token_addresses: tuple[str, ...] = ()
    message_id: str | None = None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    subject: str = ""
    subject_tag: str | None = None
    text: str = ""
    text_from_html: bool = False
    attachments: tuple[Attachment, ...] = ()
    skipped_attachments: tuple[str, ...] = ()
    auto_signals: tuple[str, ...] = ()
    bounce_signals: tuple[str, ...] = ()
    delivery_reports: tuple[DeliveryReport, ...] = ()
    bounced_message_id: str | None = None
    return_path: str | None = None
    loop_signals: tuple[str, ...] = ()
    dkim_length_tag: bool = False
    authentication_results: tuple[str, ...] = ()
    defects: tuple[str, ...] = ()

    @property
    def is_dsn(self) -> bool:
        return bool(self.delivery_reports)


def parse_inbound(
    raw: bytes,
    *,
    max_bytes: int = DEFAULT_CAPS.max_bytes,
    max_parts: int = DEFAULT_CAPS.max_parts,
    max_depth: int = DEFAULT_CAPS.max_depth,
    max_header_bytes: int = DEFAULT_CAPS.max_header_bytes,
    max_recipients: int = DEFAULT_CAPS.max_recipients,
    max_attachment_bytes: int | None = None,
    max_text_chars: int = 100_000,
    reply_domain: str | None = None,
) -> InboundMail:
    """Parse one raw mail; never raises for its content.

    ``max_text_chars`` bounds the body text (and ten times that the HTML converted), so that
    reading a huge body stays within a second or two; ``reply_domain``, when given, is the only
    domain whose ``+token`` addresses count.
    """
    dedupe_key = "sha256:" + hashlib.sha256(raw).hexdigest()
    caps = Caps(max_bytes, max_parts, max_depth, max_header_bytes, max_recipients)
    try:
        cap = prescan(raw, caps)
    except Exception:  # a scan we cannot finish gives no guarantee: refuse the mail
        return InboundMail(dedupe_key=dedupe_key, rejected="unparseable")
    if cap is not None:
        return InboundMail(dedupe_key=dedupe_key, rejected=cap)
    try:
        msg = BytesParser(policy=policy.compat32).parsebytes(raw)
        return _extract(
            msg, raw, dedupe_key, caps, max_attachment_bytes, max_text_chars, reply_domain
        )
    except RecursionError:  # defence in depth: prescan should have refused it
        return InboundMail(dedupe_key=dedupe_key, rejected="too_deep")
    except Exception as exc:  # whatever still fails is a property of the mail, not a crash
        return InboundMail(
            dedupe_key=dedupe_key, rejected="unparseable", defects=(type(exc).__name__,)
        )


def _extract(
    msg: Message,
    raw: bytes,
    dedupe_key: str,
    caps: Caps,
    max_attachment_bytes: int | None,
    max_text_chars: int,
    reply_domain: str | None,
) -> InboundMail:
    defects: list[str] = []
    try:
        recipients = _recipients(msg, caps.max_recipients)
    except AddressError:
        return InboundMail(dedupe_key=dedupe_key, rejected="too_many_recipients")
    sender, sender_name, sender_problem = _sender(msg)
    message_ids = msg_ids(header_value(msg, "Message-ID"))
    subject = decode_words(header_value(msg, "Subject") or "").strip()
    tag = _SUBJECT_TAG.search(subject)
    try:
        body = read_body(
            msg, max_attachment_bytes=max_attachment_bytes, max_text_chars=max_text_chars
        )
        text, from_html = body.text, body.from_html
        attachments, skipped = body.attachments, body.skipped
        defects.extend(body.defects)
    except RecursionError:
        raise
    except Exception as exc:  # a body we cannot walk still becomes a comment
        defects.append(f"body: {type(exc).__name__}")
        text, from_html = raw_body_text(raw)[:max_text_chars], False
        attachments, skipped = (), ()
    try:
        reports, bounced_id = read_reports(msg)
    except Exception as exc:  # a broken DSN is still recognised by its type
        defects.append(f"dsn: {type(exc).__name__}")
        reports, bounced_id = (), None
    return_path = _return_path(msg)
    return InboundMail(
        dedupe_key=f"message-id:{message_ids[0]}" if message_ids else dedupe_key,
        sender=sender,
        sender_name=sender_name,
        sender_problem=sender_problem,
        recipients=tuple(recipients),
        token_addresses=tuple(
            a for a in recipients if tokens.parse_token(a, domain=reply_domain) is not None
        ),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=tuple(msg_ids(header_value(msg, "In-Reply-To"))[:_MAX_REFERENCES]),
        references=tuple(msg_ids(header_value(msg, "References"))[-_MAX_REFERENCES:]),
        subject=subject,
        subject_tag=tag.group(1).upper() if tag else None,
        text=text,
        text_from_html=from_html,
        attachments=attachments,
        skipped_attachments=skipped,
        auto_signals=tuple(_auto_signals(msg, subject)),
        bounce_signals=tuple(_bounce_signals(msg, sender, subject, return_path)),
        delivery_reports=reports,
        bounced_message_id=bounced_id,
        return_path=return_path,
        loop_signals=tuple(_loop_signals(msg)),
        dkim_length_tag=any(_has_length_tag(v) for v in header_values(msg, "DKIM-Signature")),
        authentication_results=tuple(header_values(msg, "Authentication-Results")),
        defects=tuple(defects),
    )


def _sender(msg: Message) -> tuple[str | None, str, SenderProblem | None]:
    froms = header_values(msg, "From")
    if not froms:
        return None, "", "no_sender"
    if len(froms) > 1:
        return None, "", "ambiguous_sender"
    try:
        mailbox = parse_mailbox(froms[0])
    except AddressError as exc:
        if exc.reason == "ambiguous":
            return None, "", "ambiguous_sender"
        return None, "", "no_sender" if exc.reason == "empty" else "invalid_sender"
    return mailbox.address, mailbox.display_name, None


def _recipients(msg: Message, limit: int) -> list[str]:
    found: dict[str, None] = {}  # ordered and de-duplicated
    for name in ("To", "Cc"):
        for value in header_values(msg, name):
            mailboxes, _invalid = parse_address_list(value, limit=limit - len(found))
            found.update(dict.fromkeys(m.address for m in mailboxes))
    return list(found)


def _return_path(msg: Message) -> str | None:
    value = header_value(msg, "Return-Path")
    if value is None:
        return None
    inner = value.strip().strip("<>").strip()
    return inner.lower()


def _auto_signals(msg: Message, subject: str) -> Iterable[str]:
    auto_submitted = header_value(msg, "Auto-Submitted")
    if auto_submitted is not None:
        keyword = auto_submitted.split(";")[0].strip().lower()
        if keyword != "no":
            yield f"auto-submitted: {keyword}"
    for name in _AUTO_HEADERS:
        value = header_value(msg, name)
        if value is not None and value.strip().lower() not in ("no", "false", "0"):
            yield name.lower()
    precedence = (header_value(msg, "Precedence") or "").strip().lower()
    if precedence in _AUTO_PRECEDENCE:
        yield f"precedence: {precedence}"
    if _AUTO_SUBJECT.match(subject):
        yield "subject"


def _bounce_signals(
    msg: Message, sender: str | None, subject: str, return_path: str | None
) -> Iterable[str]:
    ctype = msg.get_content_type()
    report_type = str(msg.get_param("report-type", "") or "").lower()
    if ctype == "multipart/report" and "delivery-status" in report_type:
        yield "dsn"
    local = (sender or "").partition("@")[0]
    if local in _BOUNCE_SENDERS:
        yield "mailer-daemon"
    if return_path == "" and _BOUNCE_SUBJECT.search(subject):
        yield "null-return-path-and-subject"


def _loop_signals(msg: Message) -> Iterable[str]:
    if msg.get(LOOP_HEADER) is not None:
        yield LOOP_HEADER.lower()
    if len(msg.get_all("Received", [])) > _MAX_HOPS:
        yield "hops"


def _has_length_tag(signature: str) -> bool:
    return any(tag.split("=", 1)[0].strip() == "l" for tag in signature.split(";") if "=" in tag)
