"""What /status, /pnl and /positions show, read from Redis in one round trip.

Read-only and tolerant: a runner mid-upgrade may write a field we do not know or
leave one out; the phone should still show what there is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from kubetrade.state.keys import ALERTS_GROUP, Keys


@dataclass
class Overview:
    summaries: dict[str, dict[str, str]] = field(default_factory=dict)
    positions: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    alerts_pending: int | None = None


def _loads(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def read_overview(redis: Redis, keys: Keys) -> Overview:
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
        parsed = [p for p in (_loads(v) for v in (positions or {}).values()) if isinstance(p, dict)]
        if parsed:
            out.positions[name] = sorted(parsed, key=lambda p: str(p.get("symbol")))
    for runner, raw in (replies[-1] or {}).items():
        ack = _loads(raw)
        if isinstance(ack, dict):
            out.acks[runner] = ack
    try:
        groups = await r.xinfo_groups(keys.alerts)
        for g in groups:
            if g.get("name") == ALERTS_GROUP:
                out.alerts_pending = int(g.get("pending") or 0) + int(g.get("lag") or 0)
    except Exception:  # no stream yet, or an old Redis without lag: not worth failing /status
        out.alerts_pending = None
    return out
