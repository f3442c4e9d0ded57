"""Listeners that outlive outages: every subscription a runner holds (the emergency
channel, desired-state events) runs under :func:`supervised`, which restarts it forever.

A Redis outage ends a subscription with a connection error; a bug ends it with any
other exception. Either way the supervisor logs it (``runner.listener_down``, with the
error), waits with exponential backoff (``BACKOFF_MIN_S`` doubling to ``BACKOFF_MAX_S``)
and subscribes again. Once subscribed it calls the listener's ``resync``, which re-reads
the state in force (the emergency hash, the Strategy and RiskPolicy), so a change sent
while the runner was away still applies: the channel is only a nudge, Redis the truth.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from kubetrade.logs import get_logger
from kubetrade.state.client import RedisError

log = get_logger("kubetrade.runner.listeners")

BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 5.0

Resync = Callable[[], Awaitable[None]]
#: A listener: subscribes, awaits its ``on_subscribed`` callback, then listens until an
#: error ends it.
Listen = Callable[[Resync], Awaitable[None]]


async def supervised(
    name: str, runner: str, listen: Listen, resync: Resync, *, first_resync: bool = False
) -> None:
    """Run ``listen`` forever: after every end (error or return) log, back off, start it
    again; after each (re)subscription but the first (unless ``first_resync``) run
    ``resync``. Only a cancel ends it."""
    delay = BACKOFF_MIN_S
    attempt = 0

    async def subscribed() -> None:
        nonlocal delay
        delay = BACKOFF_MIN_S
        if attempt > 0:
            log.info("runner.listener_up", listener=name, strategy=runner, attempt=attempt)
        if attempt > 0 or first_resync:
            await resync()

    while True:
        try:
            await listen(subscribed)
            log.error("runner.listener_down", listener=name, strategy=runner,
                      error="ended without an error", retry_in_s=delay)
        except asyncio.CancelledError:
            raise
        except (RedisError, OSError) as exc:
            log.warning("runner.listener_down", listener=name, strategy=runner,
                        error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
        except Exception as exc:  # a bug in a handler must not end the kill switch
            log.exception("runner.listener_down", listener=name, strategy=runner,
                          error=f"{type(exc).__name__}: {exc}", retry_in_s=delay)
        attempt += 1
        await asyncio.sleep(delay)
        delay = min(delay * 2, BACKOFF_MAX_S)
