"""Live events for the dashboard WebSocket, published on one pub/sub channel.

Pub/sub is fire-and-forget on purpose: the durable record is in the state keys, and
a client that misses an event re-reads state (drop-and-resync).
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from redis.asyncio import Redis

from kubetrade.state.keys import Keys


class EventType(StrEnum):
    TRADE = "trade"
    FILL = "fill"
    ORDER = "order"
    POSITION = "position"
    EQUITY = "equity"
    STRATEGY = "strategy"
    EMERGENCY = "emergency"
    PREFLIGHT = "preflight"
    RECONCILIATION = "reconciliation"
    DESIRED = "desired"  # desired state changed in local mode (Strategy/RiskPolicy edits)


def encode_event(
    event_type: EventType, ts_ms: int, data: dict[str, Any], strategy: str = ""
) -> str:
    return json.dumps(
        {"type": event_type.value, "ts_ms": ts_ms, "strategy": strategy, "data": data},
        default=str,
        separators=(",", ":"),
    )


async def publish_event(
    redis: Redis,
    keys: Keys,
    event_type: EventType,
    ts_ms: int,
    data: dict[str, Any],
    strategy: str = "",
) -> None:
    await redis.publish(keys.events_channel, encode_event(event_type, ts_ms, data, strategy))
