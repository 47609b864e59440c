"""Dead letters of every account in the directory, through the ordinary AMQP transport.

Listing shows metadata and the reason only (never bodies); replay moves messages back into the
account's inbox with ``AmqpTransport.replay_dead``, the same logic as ``tix dlq replay``.
"""

from __future__ import annotations

import asyncio

import aio_pika
import aiormq.exceptions

from exchange.amqp import AmqpTransport
from exchange.hub import audit
from exchange.transport import dead_queue


async def list_all(amqp_url: str, accounts: list[str], *, limit: int) -> list[dict[str, object]]:
    transport = AmqpTransport(amqp_url)
    await transport.connect()
    try:
        result: list[dict[str, object]] = []
        for account in accounts:
            letters = await transport.dead_letters(account, limit=limit)
            items = []
            for letter in letters:
                event = audit.metadata(
                    letter.body,
                    kind="dead",
                    routing_key=account,
                    message_id=letter.message_id,
                    reason=letter.reason,
                )
                items.append(
                    {
                        "id": event.message_id,
                        "type": event.type,
                        "from": event.from_account,
                        "to": event.to_account,
                        "subject": event.subject,
                        "seq": event.seq,
                        "size": event.size,
                        "reason": event.reason,
                    }
                )
            result.append({"account": account, "count": len(items), "items": items})
        return result
    finally:
        await transport.close()


async def _counts(amqp_url: str, accounts: list[str]) -> dict[str, int]:
    """How many messages each account's dead-letter queue holds now (passive declare)."""
    counts: dict[str, int] = {}
    connection = await aio_pika.connect(amqp_url, timeout=10)
    try:
        for account in accounts:
            channel = await connection.channel()
            try:
                async with asyncio.timeout(30):
                    queue = await channel.declare_queue(dead_queue(account), passive=True)
                counts[account] = int(queue.declaration_result.message_count or 0)
            except aiormq.exceptions.ChannelNotFoundEntity:
                counts[account] = 0
            finally:
                if not channel.is_closed:
                    await channel.close()
    finally:
        await connection.close()
    return counts


async def replay(amqp_url: str, accounts: list[str], *, limit: int) -> dict[str, int]:
    """Replay at most what each queue holds when asked: a message that dies again at once is
    not replayed a second time in the same call (``replay_dead`` alone would keep taking it)."""
    counts = await _counts(amqp_url, accounts)
    transport = AmqpTransport(amqp_url)
    await transport.connect()
    try:
        return {
            account: await transport.replay_dead(account, limit=min(limit, counts[account]))
            if counts[account]
            else 0
            for account in accounts
        }
    finally:
        await transport.close()
