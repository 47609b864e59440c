"""What to do with a parsed inbound mail: process it, or why not.

``classify`` decides, in this order, the first rule that applies winning:

1. ``rejected``: a cap broke (``InboundMail.rejected``);
2. ``loop``: our loop header is present, the sender is one of our own addresses or domains, or
   the mail passed more hops than any real mail does;
3. ``bounce``: a DSN (``multipart/report; report-type=delivery-status``) with a failed
   recipient, or a mail from MAILER-DAEMON/postmaster; a DSN that only reports delays is an
   ``auto_reply``. A bounce carries ``token`` only when it names one of this delegation's
   mails (our Message-ID in the returned headers, or a token recipient): act on no other, as
   anyone can forge a DSN;
4. ``auto_reply``: ``Auto-Submitted`` other than ``no``, ``X-Autoreply``/``X-Autorespond``,
   ``Precedence: bulk|junk|list|auto_reply``, an out-of-office subject, a null sender;
5. ``rejected`` again for the sender: missing, ambiguous or malformed ``From``, or a DKIM
   signature with an ``l=`` tag (text can be appended after the signed length);
6. ``spoofed_sender`` with reason ``dmarc_fail`` when a trusted Authentication-Results says so;
7. ``bad_token``: no thread, no token, or no token that verifies for the delegation;
8. ``spoofed_sender``: the sender is not one of the participant's addresses;
9. ``process``: the reply split into command and comment (``commands.split_reply``).

Auto-generated mail never reaches step 9, so it never becomes a status or a comment. The
``polite_reply`` flag is set only for steps 7 and 8, for a human sender (no auto signal, a
non-null sender) that is not one of ours; the caller still rate-limits it per sender. Only
negative Authentication-Results are used, so a forged header can do no more than get its own
mail refused.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from adapters.email import tokens
from adapters.email.commands import Reply, split_reply
from adapters.email.parsing import LOOP_HEADER, DeliveryReport, InboundMail

__all__ = [
    "ThreadKey",
    "Verdict",
    "VerdictKind",
    "classify",
    "outbound_headers",
    "thread_key",
]

VerdictKind = Literal[
    "process", "auto_reply", "bounce", "loop", "spoofed_sender", "bad_token", "rejected"
]


@dataclass(frozen=True, slots=True)
class Verdict:
    """The decision on one mail; ``reply`` is set only for ``process``."""

    kind: VerdictKind
    reason: str
    polite_reply: bool = False
    reply: Reply | None = None
    token: str | None = None
    reports: tuple[DeliveryReport, ...] = ()

    @property
    def failed_recipients(self) -> tuple[str, ...]:
        return tuple(r.recipient for r in self.reports if r.failed and r.recipient)


@dataclass(frozen=True, slots=True)
class ThreadKey:
    """Ways to find the delegation a mail belongs to, strongest first.

    ``tokens``: from envelope recipients, To/Cc reply addresses, then our Message-IDs in
    In-Reply-To/References (and in a bounced original). ``message_ids``: In-Reply-To, then
    References newest first, for a lookup of our sent mail. ``subject_tag``: ``ACME-1042``.
    """

    tokens: tuple[str, ...]
    message_ids: tuple[str, ...]
    subject_tag: str | None


def outbound_headers(adapter_id: str) -> dict[str, str]:
    """Headers every mail the adapter sends must carry (RFC 3834 plus our loop marker).

    ``X-Auto-Response-Suppress`` asks Exchange for no out-of-office replies but still allows
    delivery reports, which bounce handling needs.
    """
    return {
        "Auto-Submitted": "auto-generated",
        "X-Auto-Response-Suppress": "OOF, AutoReply",
        LOOP_HEADER: adapter_id,
    }


def thread_key(
    mail: InboundMail,
    *,
    reply_domain: str | None = None,
    envelope_recipients: Iterable[str] = (),
) -> ThreadKey:
    """Everything in ``mail`` that can lead to its delegation."""
    found: list[str] = []
    for address in (*envelope_recipients, *mail.token_addresses):
        token = tokens.parse_token(address, domain=reply_domain)
        if token is not None and token not in found:
            found.append(token)
    message_ids = _thread_message_ids(mail)
    for message_id in message_ids:
        token = tokens.token_from_message_id(message_id, domain=reply_domain)
        if token is not None and token not in found:
            found.append(token)
    return ThreadKey(tokens=tuple(found), message_ids=message_ids, subject_tag=mail.subject_tag)


def _thread_message_ids(mail: InboundMail) -> tuple[str, ...]:
    ordered: list[str] = []
    bounced = (mail.bounced_message_id,) if mail.bounced_message_id else ()
    for message_id in (*bounced, *mail.in_reply_to, *reversed(mail.references)):
        if message_id not in ordered:
            ordered.append(message_id)
    return tuple(ordered)


def classify(
    mail: InboundMail,
    *,
    participant_addresses: Iterable[str],
    our_addresses: Iterable[str],
    delegation_id: str | None,
    secret: bytes,
    previous_secrets: Iterable[bytes] = (),
    our_domains: Iterable[str] = (),
    reply_domain: str | None = None,
    envelope_sender: str | None = None,
    envelope_recipients: Iterable[str] = (),
    trusted_authserv_ids: Iterable[str] = (),
) -> Verdict:
    """Decide what ``mail`` may do (see the module docstring for the rules and their order).

    ``delegation_id`` is the delegation the caller found from ``thread_key`` (None: none);
    ``envelope_sender`` is the SMTP ``MAIL FROM`` when known (``""`` for the null sender).
    """
    if mail.rejected is not None:
        return Verdict("rejected", mail.rejected)
    ours = {a.strip().lower() for a in our_addresses}
    own_domains = {d.strip().lower() for d in our_domains}
    sender = mail.sender
    if mail.loop_signals:
        return Verdict("loop", ", ".join(mail.loop_signals))
    if sender is not None and (sender in ours or sender.partition("@")[2] in own_domains):
        return Verdict("loop", "own_address")

    key = thread_key(mail, reply_domain=reply_domain, envelope_recipients=envelope_recipients)
    token = _verified_token(key, delegation_id, secret, tuple(previous_secrets))
    failed = tuple(r for r in mail.delivery_reports if r.failed)
    if failed or (mail.bounce_signals and not mail.delivery_reports):
        # Anyone can write a DSN: ``token`` says it names a mail of this delegation.
        reason = ", ".join(mail.bounce_signals) or "dsn"
        return Verdict("bounce", reason, reports=failed, token=token)
    null_sender = envelope_sender == "" or mail.return_path == ""
    auto = list(mail.auto_signals)
    if mail.delivery_reports:
        auto.append("dsn: no failure")
    if null_sender:
        auto.append("null sender")
    if auto:
        return Verdict("auto_reply", ", ".join(auto))

    if mail.sender_problem is not None or sender is None:
        return Verdict("rejected", mail.sender_problem or "no_sender")
    if mail.dkim_length_tag:
        return Verdict("rejected", "dkim_length_tag")
    if _dmarc_failed(mail.authentication_results, trusted_authserv_ids):
        return Verdict("spoofed_sender", "dmarc_fail")

    if delegation_id is None:
        return Verdict("bad_token", "unknown_thread", polite_reply=True)
    if not key.tokens:
        return Verdict("bad_token", "missing_token", polite_reply=True)
    if token is None:
        return Verdict("bad_token", "token_mismatch", polite_reply=True)
    if sender not in {a.strip().lower() for a in participant_addresses}:
        return Verdict("spoofed_sender", "sender_mismatch", polite_reply=True, token=token)
    return Verdict("process", "ok", reply=split_reply(mail.text, subject=mail.subject), token=token)


def _verified_token(
    key: ThreadKey, delegation_id: str | None, secret: bytes, previous: tuple[bytes, ...]
) -> str | None:
    if delegation_id is None:
        return None
    for token in key.tokens:
        if tokens.verify(token, delegation_id, secret, previous_secrets=previous):
            return token
    return None


def _dmarc_failed(results: Iterable[str], trusted: Iterable[str]) -> bool:
    trusted_ids = {t.strip().lower() for t in trusted}
    if not trusted_ids:
        return False
    for header in results:
        authserv_id = header.split(";", 1)[0].split()
        if not authserv_id or authserv_id[0].lower() not in trusted_ids:
            continue  # added by someone else, possibly the sender: ignore
        if re.search(r"(^|[;\s])dmarc\s*=\s*fail\b", header, re.IGNORECASE):
            return True
    return False
