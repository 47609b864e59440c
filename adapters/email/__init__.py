"""The e-mail adapter's pure layer: reply tokens, inbound parsing, reply commands, verdicts.

Nothing here does I/O. The inbound path a listener or poller runs for each raw mail::

    mail = parsing.parse_inbound(raw, reply_domain=domain)        # caps first, never raises
    key = loops.thread_key(mail, reply_domain=domain, envelope_recipients=rcpts)
    delegation_id = <look up key.tokens, then key.message_ids, then key.subject_tag>
    verdict = loops.classify(mail, delegation_id=..., secret=..., participant_addresses=...,
                             our_addresses=..., envelope_sender=mail_from, ...)
    # verdict.kind == "process": apply verdict.reply (command, argument, comment) and
    # mail.attachments; "bounce" with verdict.token set: mark verdict.failed_recipients
    # undeliverable; anything else is logged, with a rate-limited polite reply when
    # verdict.polite_reply.

Modules: ``tokens`` (reply addresses and Message-IDs), ``prescan`` (caps on raw bytes),
``addresses`` (strict From/To parsing), ``mime`` (header and charset helpers), ``htmltext``
(HTML to text), ``bodies`` (text and attachments), ``dsn`` (delivery reports), ``parsing``
(``InboundMail``), ``commands`` (``split_reply``), ``loops`` (``classify``, ``thread_key``,
``outbound_headers``). Parsing runs in the caller's process; put it in a worker with a time
limit all the same (RELIABILITY.md B16): the caps bound the known costs, not unknown ones.
"""

from adapters.hosting.schema import AdapterSchema

# The adapter's own tables and their migrations (adapters/email/migrations).
SCHEMA = AdapterSchema(name="email", models="adapters.email.models", participant="MailParticipant")
