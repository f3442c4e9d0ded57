"""The latest pre-flight report and the latest validation verdict, one JSON string each
(``keys.preflight``, ``keys.validation_latest``). The API reads them through
``StateReader.preflight``/``validation_latest``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from redis.asyncio import Redis

from kubetrade.state.keys import Keys


async def write_preflight(
    redis: Redis, keys: Keys, report_json: str, strategy: str = "", config_hash: str = ""
) -> None:
    """Store the pre-flight report (its JSON form) as the latest one, and as the latest
    of ``strategy`` (``{p}:strategy:{s}:preflight``, with ``config_hash``, the
    configuration checked, when given: the operator's CapitalAllocated condition)."""
    await redis.set(keys.preflight, report_json)
    if strategy:
        own = report_json
        if config_hash:
            own = json.dumps({**json.loads(report_json), "config_hash": config_hash},
                             sort_keys=True)
        await redis.set(keys.strategy(strategy, "preflight"), own)


async def read_strategy_preflight(redis: Redis, keys: Keys, strategy: str) -> dict[str, Any] | None:
    """The latest pre-flight report of ``strategy`` (None: none, or not JSON)."""
    raw = await redis.get(keys.strategy(strategy, "preflight"))
    try:
        data = json.loads(raw) if raw else None
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


async def write_validation_latest(redis: Redis, keys: Keys, latest: Mapping[str, Any]) -> None:
    """Store the summary of the latest validation verdict (JSON, keys sorted)."""
    await redis.set(keys.validation_latest, json.dumps(latest, sort_keys=True))


async def read_validation_latest(redis: Redis, keys: Keys) -> str | None:
    """The stored summary of the latest validation verdict as stored (JSON text), or
    ``None`` when there is none."""
    raw = await redis.get(keys.validation_latest)
    return raw.decode() if isinstance(raw, bytes) else raw
