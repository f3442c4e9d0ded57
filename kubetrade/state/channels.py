"""Subscriptions to the pub/sub channels (``keys.events_channel``,
``keys.emergency_channel``), so code outside ``kubetrade.state`` listens without a Redis
call of its own. A message is a nudge: pub/sub drops what is sent while nobody listens,
so a listener re-reads the stored state after (re)subscribing."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis


@dataclass(frozen=True)
class ChannelMessage:
    """One published message: its channel and its text."""

    channel: str
    data: str


class Subscription:
    """``async with Subscription(redis, *channels) as sub`` subscribes (raising
    ``RedisError``/``OSError`` when it cannot), leaving unsubscribes and closes."""

    def __init__(self, redis: Redis, *channels: str) -> None:
        self._redis = redis
        self._channels = channels
        self._pubsub: Any = None

    async def __aenter__(self) -> Subscription:
        pubsub: Any = self._redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(*self._channels)
        except BaseException:
            await _close(pubsub)
            raise
        self._pubsub = pubsub
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            await _close(pubsub)

    async def next(self, timeout_s: float) -> ChannelMessage | None:
        """The next message within ``timeout_s`` seconds; ``None`` when none came (or it
        was not text). Raises ``RedisError`` when the connection is lost."""
        if self._pubsub is None:
            raise RuntimeError("Subscription.next outside 'async with'")
        msg = await self._pubsub.get_message(timeout=timeout_s)
        if not msg:
            return None
        data = msg.get("data")
        if not isinstance(data, str):
            return None
        return ChannelMessage(channel=str(msg.get("channel")), data=data)

    async def json_values(self, timeout_s: float = 1.0) -> AsyncIterator[Any]:
        """The JSON value of every message, as they come (text that is not JSON is
        skipped), until the caller stops; waits ``timeout_s`` at a time. Raises
        ``RedisError`` when the connection is lost."""
        while True:
            msg = await self.next(timeout_s)
            if msg is None:
                continue
            try:
                value = json.loads(msg.data)
            except ValueError:
                continue
            yield value


async def _close(pubsub: Any) -> None:
    with contextlib.suppress(Exception):
        await pubsub.aclose()
