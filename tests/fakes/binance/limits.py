"""Binance's rate limits as the fake enforces them (with ``enforce_limits=True``):

- Orders per account: 50 per 10 seconds and 160,000 per day (fixed windows); one more
  is answered 429 ``-1015 Too many new orders; current limit is 50 orders per
  TEN_SECONDS.``. Order answers carry ``X-MBX-ORDER-COUNT-10S`` / ``-1D``.
- Bans: when the IP keeps sending while a 429's ``Retry-After`` has not passed (more
  than ``tolerated`` requests), it is banned: 418 ``-1003 Way too much request weight
  used; IP banned until ...`` for every request for ``ban_s`` (Binance: from 2 minutes).

``status`` counts the 429 and 418 answers given (the bench reads them).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

ORDERS_10S = 50
ORDERS_1D = 160_000
BAN_S = 120


@dataclass
class Refusal:
    """An answer instead of the request: HTTP status, Binance body, extra headers."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str]


@dataclass
class AccountLimits:
    """Order windows of the account and the IP's 429 / ban state (caller holds a lock)."""

    ban_s: int = BAN_S
    tolerated: int = 3
    violations: int = 0
    orders: Counter[tuple[str, int]] = field(default_factory=Counter)
    retry_until_ms: int = 0
    banned_until_ms: int = 0
    status: Counter[int] = field(default_factory=Counter)

    def before(self, now_ms: int) -> Refusal | None:
        """A request arrives: banned, or banned now for not backing off after a 429."""
        if now_ms < self.retry_until_ms and now_ms >= self.banned_until_ms:
            self.violations += 1
            if self.violations > self.tolerated:
                self.banned_until_ms = now_ms + self.ban_s * 1000
                self.violations = 0
        if now_ms < self.banned_until_ms:
            self.status[418] += 1
            return Refusal(418, {"code": -1003, "msg": (
                f"Way too much request weight used; IP banned until {self.banned_until_ms}. "
                "Please use WebSocket Streams for live updates to avoid bans.")},
                {"Retry-After": str(max(1, (self.banned_until_ms - now_ms) // 1000))})
        return None

    def limited(self, now_ms: int, retry_after_s: int) -> None:
        """A 429 was answered: the IP must wait ``retry_after_s``."""
        self.status[429] += 1
        if now_ms >= self.retry_until_ms:
            self.violations = 0
        self.retry_until_ms = max(self.retry_until_ms, now_ms + retry_after_s * 1000)

    def new_order(self, now_ms: int) -> tuple[Refusal | None, dict[str, str]]:
        """An order arrives: counted; refused (429 -1015) past a window's limit. The
        order count headers either way."""
        ten, day = ("10s", now_ms // 10_000), ("1d", now_ms // 86_400_000)
        self.orders[ten] += 1
        self.orders[day] += 1
        headers = {"X-MBX-ORDER-COUNT-10S": str(self.orders[ten]),
                   "X-MBX-ORDER-COUNT-1D": str(self.orders[day])}
        if self.orders[ten] > ORDERS_10S or self.orders[day] > ORDERS_1D:
            self.status[429] += 1
            limit = (f"{ORDERS_10S} orders per TEN_SECONDS" if self.orders[ten] > ORDERS_10S
                     else f"{ORDERS_1D} orders per ONE_DAY")
            retry = 10 - (now_ms // 1000) % 10
            return Refusal(429, {"code": -1015, "msg": f"Too many new orders; current limit "
                                 f"is {limit}."}, headers | {"Retry-After": str(retry)}), headers
        return None, headers
