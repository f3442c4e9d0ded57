"""The notifier's side of the durable alert stream: a consumer group on ``{p}:alerts``
and a delivery mark per alert (``{p}:notify:sent:{id}``, ``sending`` then ``sent``).

Producers append with :func:`kubetrade.state.alerts.raise_alert`; the dispatcher in
``kubetrade.notify`` decides what to send and when, and goes through this class for
every read, claim, mark and ack, so no Redis call is spelt outside ``kubetrade.state``.
Entries are ``(stream id, fields)`` pairs as Redis returns them (decoded strings).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.keys import ALERTS_GROUP, Keys

SENT_TTL_SECONDS = 7 * 24 * 3600
SENDING = "sending"
SENT = "sent"

Entry = tuple[str, dict[str, str]]


def sent_key(keys: Keys, alert_id: str) -> str:
    """Delivery mark of one alert."""
    return keys.alert_sent(alert_id)


class AlertInbox:
    """Consumer-group reads, claims, acks and delivery marks of the alert stream."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self.redis: Any = redis  # decode_responses=True: replies are str
        self.keys = keys

    async def audit(self, entry: AuditEntry) -> None:
        """Append ``entry`` to the audit stream (e.g. alerts given up on)."""
        await write_audit(self.redis, self.keys, entry)

    async def ensure_group(self) -> None:
        """Create the consumer group at the start of the stream (id 0), so alerts
        raised before the notifier first ran are delivered too; an existing group is
        kept."""
        try:
            await self.redis.xgroup_create(self.keys.alerts, ALERTS_GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def read(
        self, consumer: str, stream_id: str, count: int, block: int | None
    ) -> list[Entry]:
        """XREADGROUP from ``stream_id`` (``"0"``: this consumer's pending entries,
        ``">"``: new ones), blocking up to ``block`` ms. A pending entry trimmed from
        the stream comes back without fields: it is acked and left out."""
        reply = await self.redis.xreadgroup(
            ALERTS_GROUP, consumer, {self.keys.alerts: stream_id}, count=count, block=block
        )
        if not reply:
            return []
        _, entries = reply[0]
        gone = [i for i, f in entries if not f]
        if gone:
            await self.ack(gone)
        return [(i, f) for i, f in entries if f]

    async def autoclaim(
        self, consumer: str, idle_ms: int, start: str, count: int
    ) -> tuple[str, list[Entry]]:
        """XAUTOCLAIM entries pending longer than ``idle_ms`` from ``start``; returns
        the id to continue from (``0-0``: done) and the claimed entries with fields."""
        reply = await self.redis.xautoclaim(
            self.keys.alerts, ALERTS_GROUP, consumer, idle_ms, start_id=start, count=count
        )
        next_start, entries = reply[0], reply[1]
        if isinstance(next_start, bytes):
            next_start = next_start.decode()
        return str(next_start), [(i, f) for i, f in entries if f]

    async def ack(self, ids: Sequence[str]) -> None:
        """XACK: these entries are done with (sent, duplicates or malformed)."""
        await self.redis.xack(self.keys.alerts, ALERTS_GROUP, *ids)

    async def delivery_marks(self, ids: Sequence[str]) -> list[str | None]:
        """Each alert's mark: ``sending``, ``sent`` or None (never attempted)."""
        marks: list[str | None] = await self.redis.mget([sent_key(self.keys, i) for i in ids])
        return marks

    async def mark_sending(self, ids: Sequence[str]) -> None:
        """Mark alerts ``sending`` (only those not marked yet) before a send."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for alert_id in ids:
                pipe.set(sent_key(self.keys, alert_id), SENDING, nx=True, ex=SENT_TTL_SECONDS)
            await pipe.execute()

    async def mark_sent(self, ids: Sequence[str]) -> None:
        """Mark alerts ``sent`` and ack them, in one MULTI/EXEC."""
        async with self.redis.pipeline(transaction=True) as pipe:
            for alert_id in ids:
                pipe.set(sent_key(self.keys, alert_id), SENT, ex=SENT_TTL_SECONDS)
            pipe.xack(self.keys.alerts, ALERTS_GROUP, *ids)
            await pipe.execute()


__all__ = ["SENDING", "SENT", "SENT_TTL_SECONDS", "AlertInbox", "Entry", "sent_key"]
