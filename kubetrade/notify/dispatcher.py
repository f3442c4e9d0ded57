"""Send every alert of the durable stream to the operator's chat, once.

Reading: a consumer group (``ALERTS_GROUP``) on ``keys.alerts``. An entry is acked
only after Telegram confirmed the message, so an alert raised while Telegram (or
this process) is down waits in Redis. On start the consumer re-reads its own
unacked entries, and periodically XAUTOCLAIMs entries another consumer (a crashed
pod with another name) left pending too long.

Once: before sending, each alert id is marked ``sending`` (SET NX, TTL) and after
Telegram confirms it is marked ``sent``. A re-delivered entry already ``sent`` (crash
between send and ack) is acked without sending; one still ``sending`` (crash during
the send: Telegram may or may not have it) is sent again with a note that it may be
a repeat, because losing an alert is worse than a flagged duplicate.

Pace: Telegram allows about 20 messages per minute into one group and 30 per second
overall. A burst waits for a send slot and, meanwhile, everything that fired with it
is grouped into one message (see :func:`kubetrade.notify.text.group_alerts`).
Failures: 429 waits ``retry_after``; network errors and 5xx back off exponentially
with jitter, forever — the alert stays pending in Redis, nothing is dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import warnings
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from telegram import Bot, LinkPreviewOptions
from telegram.error import BadRequest, ChatMigrated, RetryAfter, TelegramError, TimedOut

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.notify.paging import MAX_MESSAGE, pages
from kubetrade.notify.text import Outgoing, group_alerts
from kubetrade.state.alert_inbox import SENDING, SENT, SENT_TTL_SECONDS, AlertInbox, sent_key
from kubetrade.state.alerts import Alert
from kubetrade.state.audit import AuditEntry
from kubetrade.state.client import RedisError

log = logging.getLogger(__name__)

# the delivery marks, as the notifier's tests and tools know them from here
__all__ = ["SENDING", "SENT", "SENT_TTL_SECONDS", "AlertDispatcher", "ChatTarget",
           "DispatcherOptions", "RateLimiter", "bot_sender", "retry_after_seconds", "sent_key",
           "telegram_limits"]

Send = Callable[[str], Awaitable[None]]


class RateLimiter:
    """Sliding windows: at most ``limit`` sends per ``seconds`` for each window."""

    def __init__(self, clock: Clock, windows: tuple[tuple[int, float], ...]) -> None:
        self.clock = clock
        self.windows = windows
        horizon = max(seconds for _, seconds in windows)
        self._horizon_ms = int(horizon * 1000)
        self._sent: deque[int] = deque()

    def delay(self) -> float:
        """Seconds until a send is allowed (0 = now)."""
        now = self.clock.now_ms()
        while self._sent and self._sent[0] <= now - self._horizon_ms:
            self._sent.popleft()
        wait_ms = 0
        for limit, seconds in self.windows:
            window_ms = int(seconds * 1000)
            recent = [t for t in self._sent if t > now - window_ms]
            if len(recent) >= limit:
                # the oldest send that must leave the window before one more fits
                wait_ms = max(wait_ms, recent[len(recent) - limit] + window_ms - now)
        return wait_ms / 1000

    async def wait_turn(self) -> None:
        while (wait := self.delay()) > 0:
            await self.clock.sleep(wait)

    def record(self) -> None:
        """Count one request Telegram received (sent, or refused with 429)."""
        self._sent.append(self.clock.now_ms())

    async def acquire(self) -> None:
        await self.wait_turn()
        self.record()


def telegram_limits(per_chat_per_minute: int = 20, per_second: int = 30) -> tuple[
    tuple[int, float], ...
]:
    return ((per_chat_per_minute, 60.0), (per_second, 1.0))


class ChatTarget:
    """The operator's chat id, which Telegram may change once: a group upgraded to a
    supergroup answers ``ChatMigrated`` with its new id. Bot and dispatcher share one
    target so both follow the move (and the log says to update TELEGRAM_CHAT_ID)."""

    def __init__(self, chat_id: int) -> None:
        self.chat_id = chat_id
        self.ids = {chat_id}

    def migrate(self, new_id: int) -> None:
        log.error("Telegram chat %s migrated to %s: set TELEGRAM_CHAT_ID=%s",
                  self.chat_id, new_id, new_id)
        self.chat_id = new_id
        self.ids.add(new_id)


def bot_sender(bot: Bot, target: ChatTarget | int) -> Send:
    """Plain-text sends to the operator's chat (no parse mode: see kubetrade.notify.text)."""
    chat = target if isinstance(target, ChatTarget) else ChatTarget(target)
    no_preview = LinkPreviewOptions(is_disabled=True)

    async def send_one(text: str) -> None:
        try:
            await bot.send_message(chat_id=chat.chat_id, text=text,
                                   link_preview_options=no_preview)
        except ChatMigrated as exc:
            chat.migrate(int(exc.new_chat_id))
            await bot.send_message(chat_id=chat.chat_id, text=text,
                                   link_preview_options=no_preview)

    async def send(text: str) -> None:
        for page in pages(text):  # alerts are grouped to fit already; never over 4,096
            await send_one(page)

    return send


def retry_after_seconds(exc: RetryAfter) -> float:
    with warnings.catch_warnings():  # PTB 22 warns that the int form becomes a timedelta
        warnings.simplefilter("ignore")
        value: Any = exc.retry_after
    if isinstance(value, timedelta):
        return value.total_seconds()
    return float(value)


@dataclass(frozen=True)
class DispatcherOptions:
    """How the dispatcher batches, reads, claims and backs off."""

    linger_seconds: float = 1.0
    """After a batch's first alert, how long to wait for the ones that fired with it."""
    max_batch: int = 200
    """Alerts read (and grouped) at most at once."""
    block_ms: int = 2000
    """How long one stream read waits for a new alert."""
    claim_idle_ms: int = 60_000
    """An entry another consumer left pending this long is claimed."""
    claim_every_seconds: float = 30.0
    """How often to look for such entries."""
    backoff_base: float = 0.5
    """The first wait after a failed send or read, doubled each time ..."""
    backoff_cap: float = 60.0
    """... up to this (seconds)."""
    send_limits: tuple[tuple[int, float], ...] = telegram_limits()
    """(sends, seconds) windows: at most that many sends in any such span."""

    def backoff(self, attempt: int) -> float:
        """The wait before retry ``attempt`` (1 for the first)."""
        return min(self.backoff_cap, self.backoff_base * 2.0 ** min(attempt, 20))


class AlertDispatcher:
    """The loop that drains ``keys.alerts`` into Telegram. ``run()`` until ``stop()``."""

    def __init__(
        self,
        inbox: AlertInbox,
        send: Send,
        consumer: str,
        clock: Clock | None = None,
        options: DispatcherOptions = DispatcherOptions(),
    ) -> None:
        self.inbox = inbox
        self.send = send
        self.consumer = consumer
        self.clock: Clock = clock or SystemClock()
        self.limiter = RateLimiter(self.clock, options.send_limits)
        self.options = options
        self.claim_every_ms = int(options.claim_every_seconds * 1000)
        self._stopping = asyncio.Event()
        self._own_pending_done = False
        self._last_claim_ms: int | None = None
        # figures for tests and /status
        self.messages_sent = 0
        self.alerts_sent = 0
        self.duplicates_skipped = 0
        self.send_failures = 0

    def stop(self) -> None:
        self._stopping.set()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    async def ensure_group(self) -> None:
        """Create the consumer group at the start of the stream (id 0), so alerts
        raised before the notifier first ran are delivered too."""
        await self.inbox.ensure_group()

    async def run(self) -> None:
        grouped = False
        while not self.stopping:
            try:
                if not grouped:  # Redis may be down at start: keep trying, do not die
                    await self.ensure_group()
                    grouped = True
                await self.step()
            except RedisError as exc:
                # Redis down: nothing can be read or acked; wait and try again
                log.warning("alert dispatcher: Redis error %s; retrying", type(exc).__name__)
                if "NOGROUP" in str(exc):  # the stream was deleted (FLUSHDB, manual cleanup)
                    grouped = False
                # a batch may have been sent but not acked: re-read our own pending first
                self._own_pending_done = False
                await self._pause(max(self.options.backoff_cap / 4, 0.05))

    async def step(self) -> int:
        """Read one batch and deliver it; returns the number of alerts handled."""
        entries = await self._next_batch()
        if not entries:
            return 0
        return await self.deliver(entries)

    # -- reading ------------------------------------------------------------------
    async def _read(self, stream_id: str, count: int, block: int | None) -> list[Any]:
        return await self.inbox.read(self.consumer, stream_id, count, block)

    async def _claim(self) -> list[Any]:
        now = self.clock.now_ms()
        if self._last_claim_ms is not None and now - self._last_claim_ms < self.claim_every_ms:
            return []
        self._last_claim_ms = now
        claimed: list[Any] = []
        start = "0-0"
        while len(claimed) < self.options.max_batch:
            start, entries = await self.inbox.autoclaim(
                self.consumer, self.options.claim_idle_ms, start, self.options.max_batch
            )
            claimed.extend(entries)
            if start == "0-0":
                break
        return claimed

    async def _next_batch(self) -> list[Any]:
        if not self._own_pending_done:
            # entries this consumer read before a restart and never acked
            own = await self._read("0", self.options.max_batch, None)
            if own:
                return own
            self._own_pending_done = True
        claimed = await self._claim()
        if claimed:
            return claimed
        first = await self._read(">", self.options.max_batch, self.options.block_ms)
        if not first:
            return []
        if self.options.linger_seconds > 0 and len(first) < self.options.max_batch:
            await self._pause(self.options.linger_seconds)
        # also wait for a send slot before grouping: what fires meanwhile joins the group
        await self._wait_turn()
        more = await self._read(">", self.options.max_batch - len(first), None) if len(
            first
        ) < self.options.max_batch else []
        return first + more

    # -- delivering ---------------------------------------------------------------
    async def deliver(self, entries: list[Any]) -> int:
        alerts: list[Alert] = []
        bad: list[str] = []
        for entry_id, fields in entries:
            try:
                alerts.append(Alert.from_stream(entry_id, fields))
            except (KeyError, ValueError, TypeError):
                bad.append(entry_id)
        if bad:
            log.error("alert dispatcher: %d malformed alert entries acked unsent: %s",
                      len(bad), ", ".join(bad[:5]))
            await self.inbox.ack(bad)
        if not alerts:
            return len(bad)
        marks = await self.inbox.delivery_marks([a.id for a in alerts])
        done = [a.id for a, m in zip(alerts, marks, strict=True) if m == SENT]
        if done:
            self.duplicates_skipped += len(done)
            await self.inbox.ack(done)
        todo = [a for a, m in zip(alerts, marks, strict=True) if m != SENT]
        repeated = [a.id for a, m in zip(alerts, marks, strict=True) if m == SENDING]
        for out in group_alerts(todo, repeated):
            if self.stopping:
                break
            await self._deliver_one(out)
        return len(entries)

    async def _deliver_one(self, out: Outgoing) -> None:
        await self.inbox.mark_sending(out.alert_ids)
        delivered = await self._send_with_retry(out)
        if not delivered:
            return  # stopping: the entries stay pending and are re-read on restart
        await self._record_sent(out)
        self.messages_sent += 1
        self.alerts_sent += len(out.alert_ids)

    async def _record_sent(self, out: Outgoing) -> None:
        """Mark a message Telegram confirmed as ``sent``, retrying through a Redis
        outage: this process knows it was delivered, so a lost connection here must
        not turn into a re-send. Only a stop (or crash) before the mark lands leaves
        the alerts ``sending``, to be re-sent flagged as a possible repeat."""
        attempt = 0
        while True:
            try:
                await self.inbox.mark_sent(out.alert_ids)  # SET + XACK: idempotent
                return
            except RedisError as exc:
                if self.stopping:
                    raise
                attempt += 1
                wait = self.options.backoff(attempt)
                log.warning("alert dispatcher: marking %d alert(s) sent failed (%s); "
                            "retrying in %.1f s", len(out.alert_ids), type(exc).__name__, wait)
                await self._pause(wait)

    async def _send_with_retry(self, out: Outgoing) -> bool:
        attempt = 0
        text = out.text
        flagged = False
        while not self.stopping:
            await self._wait_turn()
            if self.stopping:
                break
            try:
                await self.send(text)
                self.limiter.record()
                return True
            except RetryAfter as exc:
                self.limiter.record()
                wait = retry_after_seconds(exc)
                self.send_failures += 1
                log.warning("Telegram flood control: retrying in %.1f s", wait)
                await self._pause(wait)
            except BadRequest as exc:
                # permanent for this text (e.g. chat not found, malformed): one plain
                # fallback, then give up on the text but record that it happened
                self.send_failures += 1
                if text != out.text:
                    await self._undeliverable(out, str(exc))
                    return True
                log.error("Telegram refused an alert message (%s); sending a fallback", exc)
                text = (f"{len(out.alert_ids)} alert(s) could not be shown "
                        f"(Telegram: {exc}); see the audit log / dashboard.")
            except TelegramError as exc:
                # network errors, timeouts, 5xx, 401/403: Telegram unreachable or refusing
                self.send_failures += 1
                if isinstance(exc, TimedOut) and not flagged and len(text) < MAX_MESSAGE - 80:
                    # the request may have reached Telegram: say so rather than risk
                    # an unexplained duplicate (the Bot API has no idempotency key)
                    text += "\n(re-sent after a timeout; may be a repeat)"
                    flagged = True
                attempt += 1
                wait = self.options.backoff(attempt)
                wait = wait * (0.5 + random.random() / 2)
                log.warning(
                    "Telegram send failed (%s: %s); attempt %d, retrying in %.1f s",
                    type(exc).__name__, exc, attempt, wait,
                )
                await self._pause(wait)
        return False

    async def _undeliverable(self, out: Outgoing, reason: str) -> None:
        log.error("alert(s) %s undeliverable: %s", ", ".join(out.alert_ids), reason)
        await self.inbox.audit(
            AuditEntry(
                ts_ms=self.clock.now_ms(),
                actor="notify",
                action="alert.undeliverable",
                detail={"alert_ids": list(out.alert_ids), "reason": reason},
            )
        )

    async def _wait_turn(self) -> None:
        """Wait for the rate limiter, but not past a stop request (it can be a minute)."""
        while not self.stopping and (wait := self.limiter.delay()) > 0:
            await self._pause(wait)

    async def _pause(self, seconds: float) -> None:
        """Sleep on the clock, but wake up at once when stopping."""
        if self.stopping:
            return
        sleeper = asyncio.ensure_future(self.clock.sleep(seconds))
        stopper = asyncio.ensure_future(self._stopping.wait())
        try:
            await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (sleeper, stopper):
                if not task.done():
                    task.cancel()
