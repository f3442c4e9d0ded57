"""Risk limits and the pre-trade risk engine.

Two layers, both audited with a machine-readable ``rule`` and a human ``reason``:

* Portfolio rules from the runbook: stop-loss per position (``stop_loss_pct``), a daily
  loss limit that halts entries for the rest of the UTC day (``daily_loss_limit_pct``),
  a maximum drawdown from peak equity that halts until a person resumes
  (``max_drawdown_pct``), position sizing (``max_position_size_pct`` of equity) and
  ``max_concurrent_positions``.
* Pre-trade controls of the kind SEC Rule 15c3-5 and FIA's guidance ask for: maximum
  order quantity and notional, a price collar against a fresh reference price (orders
  refused while the reference is stale or missing), a duplicate-order guard, an
  orders-per-interval throttle and a symbol allowlist.

Exits (sells of what is held) reduce risk, so they are exempt from the entry controls
(allowlist, concurrency, size, collar, throttle); they still pass the duplicate guard.
Percentages are percent (5.0 means 5%), as the runbook writes them; 0 switches the
percentage rule off.

This module holds the limits, the sizing rule and the stateful pre-trade controls; the
equity-based rules (stop-loss trigger, daily-loss and drawdown halts, kill switch) are
applied by ``TradingEngine`` (kubetrade/domain/engine.py), which owns equity and time.
Every refusal becomes an ``order_refused`` event with ``actor="risk-engine"``, the
``rule`` that refused and a ``reason`` naming the limit and the values compared.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from itertools import pairwise
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

from kubetrade.domain.models import ZERO, MarketInfo, Side

HUNDRED = Decimal(100)
MARKET_PRICE_MARGIN = Decimal("0.005")
"""Cash kept back when sizing a market BUY by the cash left: it fills at a price not
known yet (slippage, the market moving between decision and fill), and an order the
balance cannot pay at that price is refused by the exchange (insufficient funds)."""


class RiskLimits(BaseModel):
    """The RiskPolicy spec. Defaults let paper trading start with no edits.

    The one field list of the RiskPolicy: ``kubetrade.resources.RiskPolicySpec`` derives
    from it, and the descriptions are the ones ``kubectl explain riskpolicy.spec`` shows
    (so they name fields in CR spelling).
    """

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    stop_loss_pct: Decimal = Field(
        default=Decimal("5.0"),
        ge=0,
        lt=100,
        description="Sell a position when it is this many percent below its entry price; "
        "0 = no stop-loss (refused for live strategies).",
    )
    daily_loss_limit_pct: Decimal = Field(
        default=Decimal("3.0"),
        ge=0,
        le=100,
        description="Halt trading for the rest of the UTC day after losing this percent of "
        "the day's starting equity; 0 = no limit (refused for live strategies).",
    )
    max_drawdown_pct: Decimal = Field(
        default=Decimal("15.0"),
        ge=0,
        le=100,
        description="Halt until a human resumes when equity falls this percent below its "
        "peak; 0 = no limit.",
    )
    max_position_size_pct: Decimal = Field(
        default=Decimal("10.0"),
        gt=0,
        le=100,
        description="Largest position, as percent of equity, one entry may open.",
    )
    max_concurrent_positions: int = Field(
        default=3, ge=1, le=1000, description="Most positions open at once across symbols."
    )
    max_order_quantity: Decimal = Field(
        default=Decimal("1000000"), gt=0, description="Largest base-asset quantity of one order."
    )
    max_order_notional: Decimal = Field(
        default=Decimal("100000"), gt=0, description="Largest quote-asset value of one order."
    )
    price_collar_pct: Decimal = Field(
        default=Decimal("5.0"),
        ge=0,
        le=100,
        description="Refuse orders priced more than this percent away from the reference "
        "(last) price; 0 = no collar.",
    )
    reference_max_age_seconds: int = Field(
        default=300,
        ge=1,
        le=86400,  # a larger age turns the stale-price check off
        description="Refuse orders when the reference price is older than this.",
    )
    max_orders_per_interval: int = Field(
        default=10,
        ge=1,
        le=100000,
        description="Most orders one strategy may send per orderIntervalSeconds.",
    )
    order_interval_seconds: int = Field(
        default=60, ge=1, le=86400, description="Window of maxOrdersPerInterval."
    )
    allowed_symbols: list[str] = Field(
        default_factory=list,
        description="Pairs strategies may trade (BASE/QUOTE); empty = any.",
    )
    strategy_max_consecutive_losses: int = Field(
        default=5,
        ge=0,
        le=1000,
        description="Disable a strategy after this many losing trades in a row; 0 = never.",
    )
    strategy_re_enable_check_hours: Decimal = Field(
        default=Decimal("24"),
        gt=0,
        le=8760,
        description="Hours after which an auto-disabled strategy is re-evaluated.",
    )

    stop_loss_on_exchange: bool = Field(
        default=True,
        description="Live strategies: keep each position's stop-loss on the exchange as a "
        "STOP_LOSS_LIMIT sell (replaced when the position changes, cancelled when it is "
        "sold), so it protects the position while the runner is down; paper ignores it.",
    )
    stop_limit_offset_pct: Decimal = Field(
        default=Decimal("0.5"),
        ge=0,
        lt=100,
        description="The on-exchange stop's limit price, this percent below its stop price "
        "(room to fill in a falling market).",
    )

    # -- the initial live period (issue 20): the paper twin and the size ramp
    twin_divergence_pct: Decimal = Field(default=Decimal("0"), ge=0, le=100, description=(
        "Live strategies: alert (KubetradeLiveTwinDiverged) when live equity and its paper "
        "twin's differ by more than this percent of the starting equity; also what a clean "
        "size-ramp period must stay within; 0 = no threshold."))
    size_ramp_steps: list[int] = Field(default_factory=list, max_length=20, description=(
        "Live strategies: start at the first of these percents of the full position size "
        "and move to the next after each clean sizeRampPeriodHours (no reconciliation "
        "mismatch, no breaker trip, divergence within twinDivergencePct), e.g. [10, 25, 50, "
        "100]; increasing, 1..100; empty = no ramp (full size)."))
    size_ramp_period_hours: Decimal = Field(default=Decimal("24"), gt=0, le=8760, description=(
        "Hours of trading without incident before the size ramp steps up."))
    size_ramp_on_incident: Literal["hold", "lower"] = Field(default="hold", description=(
        "What an incident does to the size ramp: hold its step (the clean period restarts) "
        "or lower it one step."))

    @field_validator("size_ramp_steps")
    @classmethod
    def _ramp_steps_increase(cls, v: list[int]) -> list[int]:
        if any(not 1 <= p <= 100 for p in v) or any(b <= a for a, b in pairwise(v)):
            raise ValueError(f"sizeRampSteps: must increase within 1..100, got {v}")
        return v

    @field_validator("allowed_symbols")
    @classmethod
    def _symbols_look_like_pairs(cls, v: list[str]) -> list[str]:
        for s in v:
            if "/" not in s:
                raise ValueError(f"allowed_symbols: {s!r} is not BASE/QUOTE (e.g. BTC/USDT)")
        return v


@dataclass(frozen=True, slots=True)
class Decision:
    """A risk verdict: ``ok`` or refused under ``rule`` with a ``reason``."""

    ok: bool
    rule: str = ""
    reason: str = ""
    detail: dict[str, Any] | None = None


ACCEPT = Decision(True)


def refuse(rule: str, reason: str, **detail: Any) -> Decision:
    return Decision(False, rule, reason, {k: str(v) for k, v in detail.items()})


def floor_to_step(qty: Decimal, step: Decimal) -> Decimal:
    """Round a quantity down to a multiple of the exchange's LOT_SIZE step."""
    if step <= 0:
        return qty
    return (qty / step).to_integral_value(rounding=ROUND_DOWN) * step


def round_price(price: Decimal, step: Decimal) -> Decimal:
    """A price on the exchange's tick grid (nearest, ties to even)."""
    if step <= 0:
        return price
    return (price / step).to_integral_value() * step


def stop_price_for(entry_price: Decimal, limits: RiskLimits) -> Decimal | None:
    """Where the stop-loss of a position entered at ``entry_price`` sits."""
    if limits.stop_loss_pct <= 0:
        return None
    return entry_price * (HUNDRED - limits.stop_loss_pct) / HUNDRED


def stop_limit_for(
    quantity: Decimal, stop: Decimal | None, market: MarketInfo, limits: RiskLimits
) -> tuple[Decimal, Decimal, Decimal] | None:
    """The on-exchange stop of a position of ``quantity`` with stop price ``stop``:
    (quantity, stop price, limit price) on the exchange's lot and tick grids (both
    prices rounded down, the limit ``stop_limit_offset_pct`` below the stop), or None
    when there is no stop or the exchange would refuse the order (below min_qty or
    min_notional at the limit price)."""
    if stop is None or stop <= 0:
        return None
    qty = floor_to_step(quantity, market.qty_step)
    trigger = floor_to_step(stop, market.price_step)
    limit = floor_to_step(
        trigger * (HUNDRED - limits.stop_limit_offset_pct) / HUNDRED, market.price_step
    )
    if limit <= 0 or qty <= 0 or qty < market.min_qty or qty * limit < market.min_notional:
        return None
    return qty, trigger, limit


def size_entry(
    equity: Decimal,
    cash: Decimal,
    price: Decimal,
    market: MarketInfo,
    limits: RiskLimits,
    fee_rate: Decimal,
) -> tuple[Decimal, Decision]:
    """Quantity for a new position, or a refusal saying which minimum it missed.

    Target value = ``max_position_size_pct`` of equity, capped by what cash can pay
    (fees included, at a price up to ``MARKET_PRICE_MARGIN`` above ``price``), by
    ``max_order_notional`` and ``max_order_quantity``, then rounded down to the lot
    step. Below the exchange minimum quantity or notional it is refused.
    """
    target = equity * limits.max_position_size_pct / HUNDRED
    affordable = cash / ((1 + fee_rate) * (1 + MARKET_PRICE_MARGIN))
    value = min(target, affordable, limits.max_order_notional)
    if value <= 0 or price <= 0:
        return ZERO, refuse(
            "insufficient_cash", f"no cash to size a position (cash {cash})", cash=cash
        )
    qty = value / price
    qty = min(qty, limits.max_order_quantity)
    if market.max_qty is not None:
        qty = min(qty, market.max_qty)
    qty = floor_to_step(qty, market.qty_step)
    if qty < market.min_qty or qty <= 0:
        return ZERO, refuse(
            "below_min_qty",
            f"sized quantity {qty} is below the exchange minimum {market.min_qty} for "
            f"{market.symbol}",
            quantity=qty,
            min_qty=market.min_qty,
        )
    if qty * price < market.min_notional:
        return ZERO, refuse(
            "below_min_notional",
            f"sized order value {qty * price} is below the exchange minimum notional "
            f"{market.min_notional} for {market.symbol}",
            notional=qty * price,
            min_notional=market.min_notional,
        )
    return qty, ACCEPT


@dataclass(slots=True)
class _Reference:
    price: Decimal
    ts_ms: int


class PreTradeControls:
    """Stateful order checks: reference prices, throttle window, duplicate guard."""

    __slots__ = ("_order_times", "_recent", "limits", "references")

    def __init__(self, limits: RiskLimits) -> None:
        self.limits = limits
        self.references: dict[str, _Reference] = {}
        self._order_times: deque[int] = deque()
        self._recent: deque[tuple[int, str, str, Decimal]] = deque()

    def set_reference(self, symbol: str, price: Decimal, ts_ms: int) -> None:
        ref = self.references.get(symbol)
        if ref is None:
            self.references[symbol] = _Reference(price, ts_ms)
        elif ts_ms >= ref.ts_ms:
            ref.price = price
            ref.ts_ms = ts_ms

    def _prune(self, now_ms: int) -> None:
        horizon = now_ms - self.limits.order_interval_seconds * 1000
        times = self._order_times
        while times and times[0] <= horizon:
            times.popleft()
        recent = self._recent
        while recent and recent[0][0] <= horizon:
            recent.popleft()

    def check(
        self,
        *,
        symbol: str,
        side: Side,
        quantity: Decimal,
        price: Decimal,
        now_ms: int,
        reduce_only: bool,
        open_positions: int,
        has_position: bool,
        open_same_side: bool,
        allowed_symbols: frozenset[str] | None,
    ) -> Decision:
        """Every pre-trade rule in order; the first that fails refuses the order."""
        self._prune(now_ms)
        verdict = self._duplicate(symbol, side, quantity, now_ms, open_same_side)
        if verdict is not None:
            return verdict
        if reduce_only:
            return ACCEPT
        return (
            self._scope(symbol, open_positions, has_position, allowed_symbols)
            or self._size(quantity, price)
            or self._price(symbol, price, now_ms)
            or self._throttle()
            or ACCEPT
        )

    def _duplicate(
        self, symbol: str, side: Side, quantity: Decimal, now_ms: int, open_same_side: bool
    ) -> Decision | None:
        """Duplicate guard: an open order on the same side, or an identical order sent
        within the interval."""
        if open_same_side:
            return refuse(
                "duplicate_order",
                f"a {side} order on {symbol} is still open",
                symbol=symbol,
                side=side,
            )
        for ts, sym, sd, qty in self._recent:
            if sym == symbol and sd == side and qty == quantity:
                return refuse(
                    "duplicate_order",
                    f"identical {side} {quantity} {symbol} order sent "
                    f"{(now_ms - ts) / 1000:.0f}s ago "
                    f"(window {self.limits.order_interval_seconds}s)",
                    symbol=symbol,
                    side=side,
                    quantity=quantity,
                )
        return None

    def _scope(
        self, symbol: str, open_positions: int, has_position: bool,
        allowed_symbols: frozenset[str] | None,
    ) -> Decision | None:
        """The symbol allowlist and max_concurrent_positions."""
        lim = self.limits
        allowed = allowed_symbols
        if lim.allowed_symbols:
            allowed = frozenset(lim.allowed_symbols)
        if allowed is not None and symbol not in allowed:
            return refuse(
                "symbol_not_allowed",
                f"{symbol} is not in allowed_symbols {sorted(allowed)}",
                symbol=symbol,
            )
        if not has_position and open_positions >= lim.max_concurrent_positions:
            return refuse(
                "max_concurrent_positions",
                f"{open_positions} positions open, max_concurrent_positions is "
                f"{lim.max_concurrent_positions}",
                open_positions=open_positions,
                limit=lim.max_concurrent_positions,
            )
        return None

    def _size(self, quantity: Decimal, price: Decimal) -> Decision | None:
        """max_order_quantity and max_order_notional."""
        lim = self.limits
        if quantity > lim.max_order_quantity:
            return refuse(
                "max_order_quantity",
                f"quantity {quantity} exceeds max_order_quantity {lim.max_order_quantity}",
                quantity=quantity,
                limit=lim.max_order_quantity,
            )
        notional = quantity * price
        if notional > lim.max_order_notional:
            return refuse(
                "max_order_notional",
                f"order value {notional} exceeds max_order_notional {lim.max_order_notional}",
                notional=notional,
                limit=lim.max_order_notional,
            )
        return None

    def _price(self, symbol: str, price: Decimal, now_ms: int) -> Decision | None:
        """A fresh reference price, and the price collar around it."""
        lim = self.limits
        ref = self.references.get(symbol)
        if ref is None:
            return refuse("no_reference", f"no reference price for {symbol} yet", symbol=symbol)
        age_ms = now_ms - ref.ts_ms
        if age_ms > lim.reference_max_age_seconds * 1000:
            return refuse(
                "stale_reference",
                f"reference price for {symbol} is {age_ms / 1000:.0f}s old, "
                f"reference_max_age_seconds is {lim.reference_max_age_seconds}",
                age_seconds=age_ms / 1000,
                limit=lim.reference_max_age_seconds,
            )
        if lim.price_collar_pct > 0:
            deviation = abs(price - ref.price) * HUNDRED / ref.price
            if deviation > lim.price_collar_pct:
                return refuse(
                    "price_collar",
                    f"order price {price} is {deviation:.2f}% from reference {ref.price}, "
                    f"price_collar_pct is {lim.price_collar_pct}",
                    price=price,
                    reference=ref.price,
                    limit=lim.price_collar_pct,
                )
        return None

    def _throttle(self) -> Decision | None:
        """max_orders_per_interval over the last order_interval_seconds."""
        lim = self.limits
        if len(self._order_times) >= lim.max_orders_per_interval:
            return refuse(
                "throttle",
                f"{len(self._order_times)} orders in the last {lim.order_interval_seconds}s, "
                f"max_orders_per_interval is {lim.max_orders_per_interval}",
                orders=len(self._order_times),
                limit=lim.max_orders_per_interval,
            )
        return None

    def record(self, symbol: str, side: Side, quantity: Decimal, now_ms: int) -> None:
        """Count an order that is going out (throttle and duplicate windows)."""
        self._order_times.append(now_ms)
        self._recent.append((now_ms, symbol, str(side), quantity))

    def snapshot(self) -> dict[str, Any]:
        return {
            "references": {
                s: {"price": str(r.price), "ts_ms": r.ts_ms} for s, r in self.references.items()
            },
            "order_times": list(self._order_times),
            "recent": [[t, s, sd, str(q)] for t, s, sd, q in self._recent],
        }

    def restore(self, data: dict[str, Any]) -> None:
        # in place: the engine holds this dict for its per-candle fast path
        self.references.clear()
        self.references.update(
            (s, _Reference(Decimal(r["price"]), int(r["ts_ms"])))
            for s, r in data.get("references", {}).items()
        )
        self._order_times = deque(int(t) for t in data.get("order_times", []))
        self._recent = deque(
            (int(t), str(s), str(sd), Decimal(q)) for t, s, sd, q in data.get("recent", [])
        )


__all__ = [
    "ACCEPT",
    "Decision",
    "PreTradeControls",
    "RiskLimits",
    "floor_to_step",
    "refuse",
    "round_price",
    "size_entry",
    "stop_limit_for",
    "stop_price_for",
]
