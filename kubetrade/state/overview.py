"""What the chat's /status, /pnl and /positions show, read from Redis in one round trip.

Read-only and tolerant: a runner mid-upgrade may write a field we do not know or
leave one out; the phone should still show what there is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from kubetrade.state.keys import ALERTS_GROUP, Keys
from kubetrade.state.schema import EmergencyAck, loads_dict


@dataclass
class Overview:
    """Per strategy: the summary hash (strings as stored) and the positions (JSON
    objects, by symbol); per runner: its emergency ack; alerts not yet sent (None:
    unknown)."""

    summaries: dict[str, dict[str, str]] = field(default_factory=dict)
    positions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts_pending: int | None = None


async def strategy_names(redis: Redis, keys: Keys) -> set[str]:
    """Names of the strategies that have state in Redis."""
    r: Any = redis  # decode_responses=True
    return set(await r.smembers(keys.strategies))


async def read_overview(redis: Redis, keys: Keys) -> Overview:
    """Summaries, positions and acks in one pipeline, then the alert group's backlog."""
    r: Any = redis  # decode_responses=True
    names = sorted(await r.smembers(keys.strategies))
    async with r.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.hgetall(keys.summary(name))
            pipe.hgetall(keys.positions(name))
        pipe.hgetall(keys.emergency_acks)
        replies = await pipe.execute()
    out = Overview()
    for i, name in enumerate(names):
        summary, positions = replies[2 * i], replies[2 * i + 1]
        out.summaries[name] = dict(summary or {})
        parsed = [p for p in (loads_dict(v) for v in (positions or {}).values()) if p is not None]
        if parsed:
            out.positions[name] = sorted(parsed, key=lambda p: str(p.get("symbol")))
    for runner, raw in (replies[-1] or {}).items():
        ack = EmergencyAck.from_json(raw)
        if ack is not None:
            out.acks[runner] = ack.as_dict()
    out.alerts_pending = await _alerts_pending(r, keys)
    return out


async def _alerts_pending(r: Any, keys: Keys) -> int | None:
    try:
        groups = await r.xinfo_groups(keys.alerts)
        for g in groups:
            if g.get("name") == ALERTS_GROUP:
                return int(g.get("pending") or 0) + int(g.get("lag") or 0)
    except Exception:  # no stream yet, or an old Redis without lag: not worth failing /status
        return None
    return None


__all__ = ["Overview", "read_overview", "strategy_names"]
