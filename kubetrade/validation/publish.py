"""Validation's outputs in Redis: the latest verdict, an alert for the notifier, audit
(:mod:`kubetrade.state.validation_results`, shared with the operator's sweep gathering)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kubetrade.state.client import connect
from kubetrade.state.keys import keys_from_env
from kubetrade.state.validation_results import publish_report

__all__ = ["publish_report", "publish_to"]


async def publish_to(
    redis_url: str, report: Mapping[str, Any], location: str, summary: str
) -> None:
    """:func:`publish_report` to the Redis at ``redis_url``, with the environment's keys."""
    redis = connect(redis_url)
    try:
        await publish_report(redis, keys_from_env(), report, location, summary)
    finally:
        await redis.aclose()
