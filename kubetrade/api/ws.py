"""Fan-out of runner events to dashboard WebSocket clients.

One Redis subscription per API process; each client has its own bounded queue and its
own sender task. Publishing to a client is ``put_nowait``: a client that cannot keep
up overflows *its own* queue, which is then emptied and replaced by one ``resync``
message (the dashboard re-reads state over REST). So a slow client never delays the
others, and memory per client is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field

from starlette.websockets import WebSocket

from kubetrade.api.security import ApiMetrics
from kubetrade.domain.clock import Clock
from kubetrade.state.channels import Subscription
from kubetrade.state.client import RedisClient
from kubetrade.state.keys import Keys

log = logging.getLogger("kubetrade.api.ws")

RESYNC = json.dumps({"type": "resync"})


class Client:
    def __init__(self, ws: WebSocket, queue_size: int) -> None:
        self.ws = ws
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.resyncs = 0

    def offer(self, message: str) -> bool:
        """Queue ``message``; on overflow drop the backlog for one ``resync``.
        Returns False when a resync replaced the backlog."""
        try:
            self.queue.put_nowait(message)
            return True
        except asyncio.QueueFull:
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(RESYNC)
            self.resyncs += 1
            return False

    async def pump(self) -> None:
        """Send queued messages until the socket fails."""
        while True:
            message = await self.queue.get()
            await self.ws.send_text(message)


@dataclass(eq=False)
class EventHub:
    """The API process's one events subscription and its clients (see the module doc)."""

    redis: RedisClient
    keys: Keys
    clock: Clock
    queue_size: int
    metrics: ApiMetrics
    clients: set[Client] = field(default_factory=set, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)
    _ready: asyncio.Event = field(default_factory=asyncio.Event, init=False)

    def ensure_started(self) -> None:
        if self._task is None or self._task.done():
            self._ready = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="kubetrade-api-events")

    async def wait_ready(self) -> None:
        """Wait (up to 5 s) until the Redis subscription is live, so a client that got
        ``hello`` receives everything published after it."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5.0):
                await self._ready.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def broadcast(self, message: str) -> None:
        for client in list(self.clients):
            if not client.offer(message):
                self.metrics.ws_dropped.inc()

    async def _run(self) -> None:
        backoff = 0.2
        events, emergency = self.keys.events_channel, self.keys.emergency_channel
        while True:
            try:
                async with Subscription(self.redis, events, emergency) as subscription:
                    if backoff > 0.2:  # reconnected: clients may have missed events
                        self.broadcast(RESYNC)
                    self._ready.set()
                    backoff = 0.2
                    while True:
                        msg = await subscription.next(1.0)
                        if msg is None:
                            continue
                        data = msg.data
                        if msg.channel == emergency:
                            data = _emergency_event(data, self.clock.now_ms())
                        self.broadcast(data)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: retry, then tell clients to resync
                log.warning("event subscription lost (%s); retrying", type(exc).__name__)
                self._ready.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)


def _emergency_event(raw: str, now_ms: int) -> str:
    try:
        data = json.loads(raw)
    except ValueError:
        data = {"raw": raw}
    return json.dumps(
        {"type": "emergency", "ts_ms": now_ms, "strategy": "", "data": data},
        separators=(",", ":"),
    )
