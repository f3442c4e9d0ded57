"""``kubetrade notify`` as one coroutine: the command bot and the alert dispatcher.

Both share one ``telegram.Bot`` (one connection pool). Start-up does not give up when
Telegram is unreachable — the pod would only crash-loop, while alerts keep waiting
safely in Redis — it retries ``getMe`` with backoff until Telegram answers or the
process is told to stop. ``kubetrade local`` calls :func:`run_notify` too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from dataclasses import replace

from telegram.error import InvalidToken, TelegramError

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.notify.announce import EmergencyAnnouncer
from kubetrade.notify.bot import App, NotifyBot
from kubetrade.notify.dispatcher import AlertDispatcher, DispatcherOptions, bot_sender
from kubetrade.notify.redact import install_secret_redaction
from kubetrade.notify.settings import NotifySettings
from kubetrade.state.alert_inbox import AlertInbox
from kubetrade.state.client import Redis
from kubetrade.state.desired import DesiredState
from kubetrade.state.keys import Keys

log = logging.getLogger(__name__)


def consumer_name() -> str:
    """Stable across restarts of one pod (its name), so it re-reads its own pending."""
    return os.environ.get("POD_NAME") or socket.gethostname() or "notify"


class Notifier:
    """Owns the PTB application and the dispatcher; ``run()`` until ``stop()``."""

    def __init__(
        self,
        settings: NotifySettings,
        redis: Redis,
        keys: Keys,
        desired: DesiredState,
        clock: Clock | None = None,
        consumer: str | None = None,
        dispatcher_options: DispatcherOptions | None = None,
        poll_timeout: int = 10,
    ) -> None:
        """``dispatcher_options``: the alert dispatcher's pacing, but for its linger,
        which is always ``settings.telegram_alert_linger_seconds``."""
        install_secret_redaction(settings.telegram_bot_token.get_secret_value())
        self.settings = settings
        self.poll_timeout = poll_timeout  # long-poll seconds; also how long stop() may take
        self.clock: Clock = clock or SystemClock()
        self.bot = NotifyBot(settings, redis, keys, desired, self.clock)
        self.app: App = self.bot.build()
        options = replace(dispatcher_options or DispatcherOptions(),
                          linger_seconds=settings.telegram_alert_linger_seconds)
        self.dispatcher = AlertDispatcher(
            AlertInbox(redis, keys),
            bot_sender(self.app.bot, self.bot.target),
            consumer or consumer_name(),
            clock=self.clock,
            options=options,
        )
        self.announcer = EmergencyAnnouncer(redis, keys, self.clock)
        self._stop = asyncio.Event()
        self.started = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()
        self.dispatcher.stop()
        self.announcer.stop()

    async def _initialize(self) -> bool:
        delay = 1.0
        while not self._stop.is_set():
            try:
                await self.app.initialize()
                await self.bot.register_commands(self.app)
                return True
            except InvalidToken:
                raise
            except TelegramError as exc:
                log.warning("Telegram not reachable at start (%s); retrying in %.0f s",
                            type(exc).__name__, delay)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self._stop.wait()
                delay = min(delay * 2, 60.0)
        return False

    async def run(self) -> None:
        dispatcher = asyncio.create_task(self.dispatcher.run(), name="alert-dispatcher")
        announcer = asyncio.create_task(self.announcer.run(), name="emergency-announcer")
        try:
            if not await self._initialize():
                return
            try:
                assert self.app.updater is not None
                await self.app.updater.start_polling(
                    timeout=self.poll_timeout, drop_pending_updates=False
                )
                await self.app.start()
                self.started.set()
                log.info("notify: polling Telegram and dispatching alerts")
                stop = asyncio.create_task(self._stop.wait())
                done, _ = await asyncio.wait({stop, dispatcher},
                                             return_when=asyncio.FIRST_COMPLETED)
                if dispatcher in done:
                    stop.cancel()
                    dispatcher.result()  # a crashed dispatcher must surface, not hide
            finally:
                await self.bot.aclose()
                if self.app.updater is not None and self.app.updater.running:
                    await self.app.updater.stop()
                if self.app.running:
                    await self.app.stop()
                await self.app.shutdown()
        finally:
            announcer.cancel()
            await asyncio.wait({announcer}, timeout=2.0)  # bounded: see NotifyBot.aclose
            self.dispatcher.stop()
            if not dispatcher.done():
                await asyncio.wait({dispatcher}, timeout=10)
                dispatcher.cancel()  # after 10 s; a no-op when it ended
                with contextlib.suppress(asyncio.CancelledError):
                    await dispatcher


async def run_notify(
    settings: NotifySettings,
    redis: Redis,
    keys: Keys,
    desired: DesiredState,
    stop: asyncio.Event | None = None,
    clock: Clock | None = None,
) -> None:
    """Run until ``stop`` is set (or forever). For ``kubetrade local`` and the CLI."""
    notifier = Notifier(settings, redis, keys, desired, clock)
    if stop is None:
        await notifier.run()
        return

    async def watch() -> None:
        await stop.wait()
        notifier.stop()

    watcher = asyncio.create_task(watch())
    try:
        await notifier.run()
    finally:
        watcher.cancel()
