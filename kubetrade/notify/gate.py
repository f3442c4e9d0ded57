"""Who the bot listens to and what it remembers between two updates: the rejection
audit limiter of the chat/user gate, pending /closeall confirmations, and small
helpers over Telegram updates and runner acks. No Telegram or Redis I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from telegram import Update

from kubetrade.domain.clock import Clock

REJECT_AUDITS_PER_MINUTE = 10


@dataclass
class PendingConfirm:
    user_id: int
    chat_id: int
    expires_ms: int


class RejectAuditLimiter:
    """At most ``limit`` rejection audits per minute; the rest are counted and the
    count rides on the next audit entry written, so nothing is silently lost."""

    def __init__(self, clock: Clock, limit: int = REJECT_AUDITS_PER_MINUTE) -> None:
        self.clock = clock
        self.limit = limit
        self._window_start = -1
        self._in_window = 0
        self.suppressed = 0

    def allow(self) -> bool:
        minute = self.clock.now_ms() // 60_000
        if minute != self._window_start:
            self._window_start = minute
            self._in_window = 0
        if self._in_window < self.limit:
            self._in_window += 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        n, self.suppressed = self.suppressed, 0
        return n


def actor_of(update: Update) -> str:
    user = update.effective_user
    return f"telegram:{user.id}" if user else "telegram:unknown"


def cancelled_count(ack: dict[str, Any]) -> int:
    """Runners ack with the cancelled orders as a list of ids (or a count)."""
    value = ack.get("cancelled")
    if isinstance(value, list | tuple | dict):
        return len(value)
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def update_kind(update: Update) -> str:
    """Which kind of Telegram update this is (``message``, ``callback_query``, ...)."""
    for kind in (
        "message", "edited_message", "channel_post", "edited_channel_post", "callback_query",
        "inline_query", "my_chat_member", "chat_member", "chat_join_request", "poll",
        "poll_answer", "message_reaction",
    ):
        if getattr(update, kind, None) is not None:
            return kind
    return "other"


__all__ = [
    "REJECT_AUDITS_PER_MINUTE",
    "PendingConfirm",
    "RejectAuditLimiter",
    "actor_of",
    "cancelled_count",
    "update_kind",
]
