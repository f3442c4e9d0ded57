"""The trading engine: closed candle -> strategy -> risk -> orders; fills -> portfolio ->
strategy tracker. Pure (no I/O, no clock reads), so live trading, paper trading,
validation and full-speed replay run this same object.

How the outside drives it (the runner live, ``run_replay`` in replay):

1. ``on_candle(symbol, candle)`` for every *closed* candle, oldest first. It returns
   the orders to send, already risk-checked, with deterministic client ids and status
   CREATED (persist them before sending).
2. ``on_order_update(order)`` with what the exchange answered, and ``on_fill(fill)``
   for every execution (idempotent on ``trade_id``).
3. ``drain_events()`` after each step: audit entries (every decision with its reason)
   and alerts to raise.
4. ``snapshot()`` after each step; ``TradingEngine.restore`` after a crash.

Time comes from the candles: a candle's decision time is its close time (open time +
timeframe); the runner may pass ``now_ms`` (wall clock) so a late candle is judged
against a stale reference. Halts:

* ``daily_loss``   equity fell ``daily_loss_limit_pct`` below the UTC day's starting
                   equity; lifted automatically at the next UTC midnight.
* ``max_drawdown`` equity fell ``max_drawdown_pct`` below its peak; lifted only by
                   ``resume(by=person)``, which also restarts the peak at current equity.
* ``manual``       ``halt(reason, by)`` (kill switch); lifted by ``resume(by)``.

A halt blocks new entries. Strategy exits still go out during the risk halts (they
reduce risk) but not during a manual halt (the kill switch means "stop trading").
Stop-loss exits and ``close_all`` go out in every case: leaving a losing position
unprotected is the larger risk.

Hot path: per candle the engine does one float conversion for the strategy and a few
Decimal comparisons; Decimal arithmetic happens when a position is marked, an order is
sized or a fill is booked.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubetrade.domain import events as ev
from kubetrade.domain.algorithms import Algorithm
from kubetrade.domain.events import EngineEvent
from kubetrade.domain.models import (
    ZERO,
    Candle,
    ClosedTrade,
    Fill,
    MarketInfo,
    Order,
    OrderStatus,
    OrderType,
    Position,
    Side,
    from_dict,
    make_client_order_id,
    to_dict,
)
from kubetrade.domain.portfolio import BooksMismatch, Portfolio
from kubetrade.domain.risk import (
    HUNDRED,
    PreTradeControls,
    RiskLimits,
    _Reference,
    floor_to_step,
    size_entry,
    stop_price_for,
)
from kubetrade.domain.tracker import StrategyTracker, TrackerChange

DAY_MS = 86_400_000
SNAPSHOT_VERSION = 1
_SEEN_TRADES_KEPT = 2_000
_REASONS_KEPT = 500

HALT_MANUAL = "manual"
HALT_DAILY = "daily_loss"
HALT_DRAWDOWN = "max_drawdown"

PHASE_RUNNING = "Running"
PHASE_HALTED = "Halted"
PHASE_DISABLED = "Disabled"


@dataclass(slots=True)
class _SymbolState:
    market: MarketInfo
    last_ts: int | None = None
    interval_ms: int = 0
    step: Callable[[float], Side | None] | None = None
    ref: _Reference | None = None


@dataclass(slots=True)
class Halt:
    kind: str
    reason: str
    by: str
    since_ms: int
    until_ms: int | None = None


class TradingEngine:
    """One strategy's trading state; see the module docstring."""

    def __init__(
        self,
        strategy_name: str,
        strategy: Algorithm[Any, Any],
        limits: RiskLimits,
        markets: dict[str, MarketInfo],
        starting_cash: Decimal,
        quote_asset: str = "USDT",
        *,
        fee_rate: Decimal = Decimal("0.001"),
        timeframe_ms: int | None = None,
    ) -> None:
        self.name = strategy_name
        #: What client order ids derive from when it differs from the displayed name
        #: (a runner qualifies it with its namespace so two same-named Strategies on one
        #: exchange account never share ids).
        self.order_id_source: str | None = None
        self.strategy = strategy
        self.limits = limits
        self.markets = dict(markets)
        self.quote_asset = quote_asset
        self.fee_rate = fee_rate
        self.timeframe_ms = timeframe_ms
        self.portfolio = Portfolio(strategy_name, starting_cash, quote_asset)
        self.controls = PreTradeControls(limits)
        self._refs = self.controls.references
        self.tracker = StrategyTracker(
            limits.strategy_max_consecutive_losses,
            limits.strategy_re_enable_check_hours,
            fee_rate,
        )
        self._symbols: dict[str, _SymbolState] = {
            s: _SymbolState(m) for s, m in self.markets.items()
        }
        self._allowed = frozenset(self.markets)
        self._open: dict[str, Order] = {}
        self._reasons: OrderedDict[str, str] = OrderedDict()
        self._seen: set[str] = set()
        self._seen_order: deque[str] = deque()
        self._marks: dict[str, Decimal] = {}
        self._halts: dict[str, Halt] = {}
        self._events: list[EngineEvent] = []
        self._now_ms = 0
        self._seq_ts = -1
        self._seq = 0
        self.equity: Decimal = starting_cash
        """Cash plus positions at their last marks (kept current; read it, do not set)."""
        self._peak = starting_cash
        self._dd_floor = ZERO
        self._day = -1
        self._next_day_ms = -1
        self._day_start = starting_cash
        self._day_floor = ZERO
        self._trades = 0
        self._wins = 0
        self._set_peak(starting_cash)

    # ------------------------------------------------------------------ queries

    @property
    def is_halted(self) -> bool:
        return bool(self._halts)

    @property
    def halts(self) -> dict[str, Halt]:
        return dict(self._halts)

    @property
    def halted_reason(self) -> str:
        return "; ".join(f"{h.kind}: {h.reason}" for h in self._halts.values())

    @property
    def open_orders(self) -> list[Order]:
        return list(self._open.values())

    @property
    def positions(self) -> dict[str, Position]:
        return dict(self.portfolio.positions)

    @property
    def marks(self) -> dict[str, Decimal]:
        return dict(self._marks)

    @property
    def phase(self) -> str:
        if self._halts:
            return PHASE_HALTED
        if not self.tracker.enabled:
            return PHASE_DISABLED
        return PHASE_RUNNING

    def summary(self) -> dict[str, Any]:
        """What the runner publishes as the strategy's summary (money as strings)."""
        pf = self.portfolio
        risk = self.risk_state()
        return {
            "phase": self.phase,
            "equity": str(self.equity),
            "cash": str(pf.cash),
            "starting_cash": str(pf.starting_cash),
            "pnl": str(self.equity - pf.starting_cash),
            "realised_pnl": str(pf.realised_pnl),
            "fees": str(pf.fees_paid),
            "trades": self._trades,
            "wins": self._wins,
            "win_rate": self._wins / self._trades if self._trades else 0.0,
            "open_positions": len(pf.positions),
            "open_orders": len(self._open),
            "halted": bool(self._halts),
            "halted_reason": self.halted_reason,
            "strategy_enabled": self.tracker.enabled,
            "consecutive_losses": self.tracker.consecutive_losses,
            "daily_loss_pct": str(risk["daily_loss_pct"].quantize(Decimal("0.0001"))),
            "drawdown_pct": str(risk["drawdown_pct"].quantize(Decimal("0.0001"))),
            "updated_ms": self._now_ms,
        }

    def risk_state(self) -> dict[str, Any]:
        """How close the equity rules are to firing, for dashboards and alert rules.

        ``daily_loss_pct``: percent below the UTC day's starting equity (0 if above);
        ``drawdown_pct``: percent below peak equity; ``*_used_ratio``: that value over
        its limit (1.0 = the halt fires; 0 when the limit is off).
        """
        eq = self.equity
        start, peak = self._day_start, self._peak
        daily = max(ZERO, (start - eq) * HUNDRED / start) if start > 0 else ZERO
        dd = max(ZERO, (peak - eq) * HUNDRED / peak) if peak > 0 else ZERO
        lim = self.limits
        return {
            "equity": eq,
            "day_start_equity": start,
            "peak_equity": peak,
            "daily_loss_pct": daily,
            "drawdown_pct": dd,
            "daily_loss_limit_used_ratio": (
                float(daily / lim.daily_loss_limit_pct) if lim.daily_loss_limit_pct > 0 else 0.0
            ),
            "drawdown_limit_used_ratio": (
                float(dd / lim.max_drawdown_pct) if lim.max_drawdown_pct > 0 else 0.0
            ),
            "halts": [h.kind for h in self._halts.values()],
        }

    def drain_events(self) -> list[EngineEvent]:
        out = self._events
        self._events = []
        return out

    # ------------------------------------------------------------------ helpers

    def _emit(
        self,
        action: str,
        reason: str = "",
        *,
        kind: str = ev.AUDIT,
        actor: str = ev.ACTOR_ENGINE,
        severity: str = "info",
        title: str = "",
        ts_ms: int | None = None,
        **detail: Any,
    ) -> None:
        self._events.append(
            EngineEvent(
                kind=kind,
                ts_ms=self._now_ms if ts_ms is None else ts_ms,
                actor=actor,
                action=action,
                strategy=self.name,
                reason=reason,
                detail=detail,
                severity=severity,
                title=title,
                text=reason,
            )
        )

    def _next_id(self, ts_ms: int) -> str:
        if ts_ms == self._seq_ts:
            self._seq += 1
        else:
            self._seq_ts = ts_ms
            self._seq = 0
        source = self.order_id_source or self.name
        cid = make_client_order_id(source, ts_ms, self._seq)
        while cid in self._reasons or cid in self._open:
            self._seq += 1
            cid = make_client_order_id(source, ts_ms, self._seq)
        return cid

    def _set_peak(self, equity: Decimal) -> None:
        self._peak = equity
        pct = self.limits.max_drawdown_pct
        self._dd_floor = equity * (HUNDRED - pct) / HUNDRED if pct > 0 else ZERO

    def _set_day_start(self, equity: Decimal) -> None:
        self._day_start = equity
        pct = self.limits.daily_loss_limit_pct
        self._day_floor = equity * (HUNDRED - pct) / HUNDRED if pct > 0 else ZERO

    def _new_day(self, day: int, now_ms: int) -> None:
        self._day = day
        self._next_day_ms = (day + 1) * DAY_MS
        self._set_day_start(self.equity)
        halt = self._halts.get(HALT_DAILY)
        if halt is not None and halt.until_ms is not None and now_ms >= halt.until_ms:
            del self._halts[HALT_DAILY]
            self._emit(
                "halt_lifted",
                "new UTC day: daily loss limit reset",
                actor=ev.ACTOR_RISK,
                rule=HALT_DAILY,
                day_start_equity=str(self.equity),
            )

    def _check_equity(self, equity: Decimal) -> None:
        """Mark equity and apply the daily-loss and drawdown halts."""
        self.equity = equity
        if equity > self._peak:
            self._set_peak(equity)
        elif equity <= self._dd_floor and HALT_DRAWDOWN not in self._halts:
            dd = (self._peak - equity) * HUNDRED / self._peak
            reason = (
                f"drawdown {dd:.2f}% from peak {self._peak:.2f} reached max_drawdown_pct "
                f"{self.limits.max_drawdown_pct}"
            )
            self._halts[HALT_DRAWDOWN] = Halt(HALT_DRAWDOWN, reason, ev.ACTOR_RISK, self._now_ms)
            self._emit(
                "halt",
                reason,
                kind=ev.MAX_DRAWDOWN_HALT,
                actor=ev.ACTOR_RISK,
                severity="critical",
                title=f"{self.name}: max drawdown halt",
                rule=HALT_DRAWDOWN,
                equity=str(equity),
                peak=str(self._peak),
            )
        if equity <= self._day_floor and HALT_DAILY not in self._halts:
            loss = (self._day_start - equity) * HUNDRED / self._day_start
            # until the end of the UTC day in which the loss is seen: a loss seen at
            # the 00:00 mark (the day's last candle closing) halts the day beginning
            until = (max(self._day, self._now_ms // DAY_MS) + 1) * DAY_MS
            reason = (
                f"daily loss {loss:.2f}% reached daily_loss_limit_pct "
                f"{self.limits.daily_loss_limit_pct}; halted until next UTC day"
            )
            self._halts[HALT_DAILY] = Halt(HALT_DAILY, reason, ev.ACTOR_RISK, self._now_ms, until)
            self._emit(
                "halt",
                reason,
                kind=ev.DAILY_LOSS_LIMIT,
                actor=ev.ACTOR_RISK,
                severity="critical",
                title=f"{self.name}: daily loss limit",
                rule=HALT_DAILY,
                equity=str(equity),
                day_start_equity=str(self._day_start),
                until_ms=until,
            )

    def _mark(self) -> None:
        self._check_equity(self.portfolio.equity(self._marks))

    def _mark_one(self, pos: Position, price: Decimal) -> None:
        """Fast mark when ``pos`` is the only thing held (the common case)."""
        pf = self.portfolio
        if len(pf.positions) == 1 and not pf.dust:
            equity = pf.cash + pos.quantity * price
            # inline of the no-news case of _check_equity
            if self._dd_floor < equity <= self._peak and equity > self._day_floor:
                self.equity = equity
                return
            self._check_equity(equity)
        else:
            self._mark()

    def _bind(self, symbol: str) -> Callable[[float], Side | None]:
        """The strategy's per-symbol step, bound once (saves a lookup per candle)."""
        bind = getattr(self.strategy, "bind", None)
        if bind is not None:
            bound: Callable[[float], Side | None] = bind(symbol)
            return bound
        update = self.strategy.update
        return lambda close: update(symbol, close)

    def _pending(self, symbol: str) -> Order | None:
        for o in self._open.values():
            if o.symbol == symbol:
                return o
        return None

    def _exiting(self, symbol: str) -> bool:
        return any(o.symbol == symbol and o.side is Side.SELL for o in self._open.values())

    def _refuse(
        self, symbol: str, side: Side, rule: str, reason: str,
        detail: dict[str, Any] | None = None,
    ) -> None:
        merged: dict[str, Any] = dict(detail or {})
        merged.update(rule=rule, symbol=symbol, side=str(side))
        self._emit("order_refused", reason, actor=ev.ACTOR_RISK, **merged)

    def _exit_qty(self, symbol: str, pos: Position, price: Decimal, why: str) -> Decimal:
        """Sellable quantity of a position, or 0 (audited) when the exchange would refuse
        the sell: less than a lot step or below the minimum order value."""
        market = self.markets[symbol]
        qty = floor_to_step(pos.quantity, market.qty_step)
        if qty > 0 and qty >= market.min_qty and qty * price >= market.min_notional:
            return qty
        self._refuse(
            symbol, Side.SELL, "below_min_notional",
            f"{why}: position {pos.quantity} {symbol} worth {qty * price} cannot be sold "
            f"(min_qty {market.min_qty}, min_notional {market.min_notional})",
        )
        return ZERO

    def _make_order(
        self, symbol: str, side: Side, qty: Decimal, ts_ms: int, reason: str, price: Decimal
    ) -> Order:
        cid = self._next_id(ts_ms)
        order = Order(
            client_order_id=cid,
            strategy=self.name,
            symbol=symbol,
            side=side,
            type=OrderType.MARKET,
            quantity=qty,
            created_ms=ts_ms,
            updated_ms=ts_ms,
            reason=reason,
        )
        self._open[cid] = order
        self._reasons[cid] = reason
        if len(self._reasons) > _REASONS_KEPT:
            self._reasons.popitem(last=False)
        self.controls.record(symbol, side, qty, ts_ms)
        self._emit(
            "order_created",
            reason,
            symbol=symbol,
            side=str(side),
            quantity=qty,
            expected_price=price,
            client_order_id=cid,
        )
        return order

    # ------------------------------------------------------------------ decisions

    def on_candle(self, symbol: str, candle: Candle, now_ms: int | None = None) -> list[Order]:
        """Feed one closed candle; returns the orders to send (may be empty).

        A candle not newer than the last one seen for the symbol is ignored, so a
        re-delivered candle after a reconnect cannot trade twice.
        """
        st = self._symbols.get(symbol)
        if st is None:
            raise ValueError(f"symbol {symbol!r} has no MarketInfo; known: {sorted(self.markets)}")
        ts = candle.ts_ms
        prev = st.last_ts
        if prev is not None:
            if ts <= prev:
                return []
            gap = ts - prev
            if gap < st.interval_ms or not st.interval_ms:
                st.interval_ms = gap
        st.last_ts = ts
        close_ms = ts + (self.timeframe_ms or st.interval_ms)
        # a decision is never earlier than the close it decides on (a runner clock a
        # moment behind the exchange's must not put it in the day before)
        now = close_ms if now_ms is None or now_ms < close_ms else now_ms
        self._now_ms = now
        close = candle.close
        self._marks[symbol] = close
        ref = st.ref
        if ref is None:
            self.controls.set_reference(symbol, close, close_ms)
            st.ref = self._refs[symbol]
        elif close_ms >= ref.ts_ms:
            ref.price = close
            ref.ts_ms = close_ms
        orders: list[Order] = []
        pos = self.portfolio.positions.get(symbol)
        if pos is not None:
            stop = pos.stop_price
            # only an exit already on its way holds the stop back (selling twice); an
            # entry still open must not leave what is held unprotected
            if stop is not None and candle.low <= stop and not self._exiting(symbol):
                qty = self._exit_qty(symbol, pos, close, "stop_loss")
                if qty > 0:
                    self._emit(
                        "stop_loss",
                        f"low {candle.low} <= stop {stop}",
                        actor=ev.ACTOR_RISK,
                        symbol=symbol,
                        stop_price=str(stop),
                        low=str(candle.low),
                    )
                    orders.append(self._make_order(symbol, Side.SELL, qty, now, "stop_loss", close))
            pf = self.portfolio
            if len(pf.positions) == 1 and not pf.dust:
                # _mark_one inlined: the per-candle cost of holding a position
                equity = pf.cash + pos.quantity * close
                if self._dd_floor < equity <= self._peak and equity > self._day_floor:
                    self.equity = equity
                else:
                    self._check_equity(equity)
            else:
                self._mark()
        if close_ms >= self._next_day_ms:
            # after the mark: the new day's baseline is the equity at midnight (this
            # candle's close), and this candle's loss was judged against the old day's
            self._new_day(close_ms // DAY_MS, now)
        tracker = self.tracker
        if not tracker.enabled:
            change = tracker.check(now)
            if change is not None:
                self._tracker_event(change, from_check=True)
        step = st.step
        if step is None:
            step = st.step = self._bind(symbol)
        signal = step(float(close))
        if signal is None:
            return orders
        if signal is Side.BUY:
            self._on_buy(symbol, st, close, now, orders)
        else:
            self._on_sell(symbol, st, close, now, orders)
        return orders

    def _on_buy(
        self, symbol: str, st: _SymbolState, price: Decimal, now: int, orders: list[Order]
    ) -> None:
        if not self.tracker.enabled:
            self.tracker.on_shadow_signal(symbol, True, price)
            self._emit("shadow_signal", "strategy disabled: BUY traded in shadow only",
                       symbol=symbol, side="buy", price=str(price))
            return
        pf = self.portfolio
        if symbol in pf.positions or self._pending(symbol) is not None:
            return
        if self._halts:
            self._refuse(symbol, Side.BUY, "halted", f"trading halted ({self.halted_reason})")
            return
        qty, verdict = size_entry(
            self.equity, pf.cash, price, st.market, self.limits, self.fee_rate
        )
        if not verdict.ok:
            self._refuse(symbol, Side.BUY, verdict.rule, verdict.reason, verdict.detail)
            return
        verdict = self.controls.check(
            symbol=symbol,
            side=Side.BUY,
            quantity=qty,
            price=price,
            now_ms=now,
            reduce_only=False,
            open_positions=self._positions_and_entries(),
            has_position=False,
            open_same_side=False,
            allowed_symbols=self._allowed,
        )
        if not verdict.ok:
            self._refuse(symbol, Side.BUY, verdict.rule, verdict.reason, verdict.detail)
            return
        orders.append(self._make_order(symbol, Side.BUY, qty, now, "signal", price))

    def _positions_and_entries(self) -> int:
        """Positions held plus entries still at the exchange (sent, unknown or resting):
        each of those may become a position, so each takes a max_concurrent_positions
        slot until the exchange says otherwise."""
        held = self.portfolio.positions
        entering = {
            o.symbol for o in self._open.values() if o.side is Side.BUY and o.symbol not in held
        }
        return len(held) + len(entering)

    def _on_sell(
        self, symbol: str, st: _SymbolState, price: Decimal, now: int, orders: list[Order]
    ) -> None:
        if not self.tracker.enabled:
            self.tracker.on_shadow_signal(symbol, False, price)
            self._emit("shadow_signal", "strategy disabled: SELL traded in shadow only",
                       symbol=symbol, side="sell", price=str(price))
        pos = self.portfolio.positions.get(symbol)
        if pos is None or self._pending(symbol) is not None or orders:
            return
        if HALT_MANUAL in self._halts:
            self._refuse(symbol, Side.SELL, "halted", f"trading halted ({self.halted_reason})")
            return
        qty = self._exit_qty(symbol, pos, price, "signal")
        if qty <= 0:
            return
        verdict = self.controls.check(
            symbol=symbol,
            side=Side.SELL,
            quantity=qty,
            price=price,
            now_ms=now,
            reduce_only=True,
            open_positions=len(self.portfolio.positions),
            has_position=True,
            open_same_side=False,
            allowed_symbols=self._allowed,
        )
        if not verdict.ok:
            self._refuse(symbol, Side.SELL, verdict.rule, verdict.reason, verdict.detail)
            return
        orders.append(self._make_order(symbol, Side.SELL, qty, now, "signal", price))

    def _tracker_event(self, change: TrackerChange, from_check: bool = False) -> None:
        if change.enabled:
            self._emit(
                "strategy_reenabled",
                change.reason,
                kind=ev.STRATEGY_REENABLED,
                actor=ev.ACTOR_RISK,
                title=f"{self.name}: strategy re-enabled",
                ts_ms=change.ts_ms,
                **change.detail,
            )
        elif from_check:
            self._emit(
                "strategy_kept_disabled", change.reason, actor=ev.ACTOR_RISK,
                ts_ms=change.ts_ms, **change.detail,
            )
        else:
            self._emit(
                "strategy_disabled",
                change.reason,
                kind=ev.STRATEGY_DISABLED,
                actor=ev.ACTOR_RISK,
                severity="warning",
                title=f"{self.name}: strategy disabled",
                ts_ms=change.ts_ms,
                **change.detail,
            )

    # ------------------------------------------------------------------ execution

    def on_order_update(self, order: Order) -> None:
        """Record what the exchange says about one of our orders."""
        cid = order.client_order_id
        known = self._open.get(cid)
        if order.status.is_terminal:
            self._open.pop(cid, None)
            if order.status is not OrderStatus.FILLED:
                self._emit(
                    f"order_{order.status.value}",
                    order.reason or f"order {order.status.value} by the exchange",
                    symbol=order.symbol,
                    side=str(order.side),
                    client_order_id=cid,
                    filled_quantity=str(order.filled_quantity),
                )
        elif known is not None or order.strategy == self.name:
            self._open[cid] = order
        if order.updated_ms > self._now_ms:
            self._now_ms = order.updated_ms

    def on_fill(self, fill: Fill) -> list[ClosedTrade]:
        """Book one execution; a trade id seen before is ignored (idempotent)."""
        if fill.trade_id in self._seen:
            return []
        market = self.markets.get(fill.symbol)
        if market is None:
            raise ValueError(f"fill {fill.trade_id}: unknown symbol {fill.symbol!r}")
        reason = self._reasons.get(fill.client_order_id, "")
        pf = self.portfolio
        had_position = fill.symbol in pf.positions
        try:
            closed = pf.apply_fill(fill, market.base, market.min_qty, reason)
        except BooksMismatch as exc:
            self._emit(
                "fill_rejected",
                str(exc),
                kind=ev.RECONCILIATION_MISMATCH,
                severity="critical",
                title=f"{self.name}: fill does not match our books",
                trade_id=fill.trade_id,
            )
            raise
        self._seen.add(fill.trade_id)
        self._seen_order.append(fill.trade_id)
        if len(self._seen_order) > _SEEN_TRADES_KEPT:
            self._seen.discard(self._seen_order.popleft())
        if fill.ts_ms > self._now_ms:
            self._now_ms = fill.ts_ms
        if fill.symbol not in self._marks:
            self._marks[fill.symbol] = fill.price
        pos = pf.positions.get(fill.symbol)
        if fill.side is Side.BUY and pos is not None:
            pos.stop_price = stop_price_for(pos.average_price, self.limits)
            if not had_position:
                self._emit(
                    "trade_opened",
                    f"bought {fill.quantity} {fill.symbol} at {fill.price}",
                    kind=ev.TRADE_OPENED,
                    title=f"{self.name}: opened {fill.symbol}",
                    symbol=fill.symbol,
                    quantity=fill.quantity,
                    price=fill.price,
                    stop_price=pos.stop_price,
                    client_order_id=fill.client_order_id,
                )
        if pos is not None:
            self._mark_one(pos, self._marks[fill.symbol])
        elif not pf.positions and not pf.dust:
            self._check_equity(pf.cash)
        else:
            self._mark()
        if closed is None:
            return []
        self._trades += 1
        if closed.pnl > 0:
            self._wins += 1
        self._emit(
            "trade_closed",
            f"closed {closed.symbol} ({closed.exit_reason or 'exit'}): pnl {closed.pnl:.2f}",
            kind=ev.TRADE_CLOSED,
            severity="info" if closed.pnl >= 0 else "warning",
            title=f"{self.name}: closed {closed.symbol}",
            symbol=closed.symbol,
            pnl=closed.pnl,
            entry_price=closed.entry_price,
            exit_price=closed.exit_price,
            quantity=closed.quantity,
            exit_reason=closed.exit_reason,
        )
        change = self.tracker.on_trade(closed.pnl, closed.exit_ms)
        if change is not None:
            self._tracker_event(change)
        return [closed]

    # ------------------------------------------------------------------ control

    def halt(self, reason: str, by: str, ts_ms: int | None = None) -> None:
        """Kill switch: no new orders (except stop-loss and close_all) until resume."""
        now = self._now_ms if ts_ms is None else ts_ms
        self._halts[HALT_MANUAL] = Halt(HALT_MANUAL, reason, by, now)
        self._emit("halt", reason, actor=by, ts_ms=now, rule=HALT_MANUAL)

    def resume(self, by: str, ts_ms: int | None = None) -> None:
        """A person lifts the manual and the drawdown halts; when a drawdown halt is
        lifted the peak restarts at current equity (else it would halt again at once).
        The daily-loss halt stays until the next UTC day."""
        now = self._now_ms if ts_ms is None else ts_ms
        lifted = [k for k in (HALT_MANUAL, HALT_DRAWDOWN) if k in self._halts]
        for k in lifted:
            del self._halts[k]
        if HALT_DRAWDOWN in lifted:
            self._set_peak(self.equity)
        self._emit(
            "resume",
            f"resumed by {by}" + (f"; lifted {', '.join(lifted)}" if lifted else ""),
            actor=by,
            ts_ms=now,
            lifted=lifted,
            still_halted=self.halted_reason,
        )

    def enable_strategy(self, by: str, ts_ms: int | None = None) -> None:
        """A person re-enables a strategy the tracker disabled."""
        change = self.tracker.enable(self._now_ms if ts_ms is None else ts_ms, by)
        if change is not None:
            self._tracker_event(change)

    def close_all(self, ts_ms: int) -> list[Order]:
        """Market sells for every position (emergency close-all), bypassing halts."""
        self._now_ms = max(self._now_ms, ts_ms)
        orders: list[Order] = []
        for sym, pos in list(self.portfolio.positions.items()):
            if any(o.symbol == sym and o.side is Side.SELL for o in self._open.values()):
                continue
            mark = self._marks.get(sym, pos.average_price)
            qty = self._exit_qty(sym, pos, mark, "close_all")
            if qty <= 0:
                continue
            orders.append(self._make_order(sym, Side.SELL, qty, ts_ms, "close_all", mark))
        self._emit("close_all", f"{len(orders)} positions to close", ts_ms=ts_ms,
                   orders=[o.client_order_id for o in orders])
        return orders

    def update_reference(self, symbol: str, price: Decimal, ts_ms: int) -> None:
        """A fresher reference price (e.g. the ticker) for the price collar."""
        self.controls.set_reference(symbol, price, ts_ms)

    def update_limits(self, limits: RiskLimits) -> None:
        """Hot change of the RiskPolicy: thresholds, stops and tracker follow at once."""
        old = self.limits
        self.limits = limits
        self.controls.limits = limits
        self.tracker.configure(
            limits.strategy_max_consecutive_losses, limits.strategy_re_enable_check_hours
        )
        self._set_peak(self._peak)
        self._set_day_start(self._day_start)
        for pos in self.portfolio.positions.values():
            pos.stop_price = stop_price_for(pos.average_price, limits)
        changed = {
            k: {"old": str(v), "new": str(getattr(limits, k))}
            for k, v in old
            if getattr(limits, k) != v
        }
        self._emit("limits_updated", "risk policy changed", actor=ev.ACTOR_RISK, changed=changed)

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue after SIGKILL, as JSON-able data."""
        return {
            "version": SNAPSHOT_VERSION,
            "name": self.name,
            "quote_asset": self.quote_asset,
            "fee_rate": str(self.fee_rate),
            "timeframe_ms": self.timeframe_ms,
            "limits": self.limits.model_dump(mode="json"),
            "markets": {s: to_dict(m) for s, m in self.markets.items()},
            "portfolio": self.portfolio.snapshot(),
            "controls": self.controls.snapshot(),
            "tracker": self.tracker.snapshot(),
            "strategy": self.strategy.snapshot(),
            "open_orders": [to_dict(o) for o in self._open.values()],
            "reasons": list(self._reasons.items()),
            "seen_trades": list(self._seen_order),
            "marks": {s: str(p) for s, p in self._marks.items()},
            "symbols": {
                s: {"last_ts": st.last_ts, "interval_ms": st.interval_ms}
                for s, st in self._symbols.items()
            },
            "halts": [
                {"kind": h.kind, "reason": h.reason, "by": h.by, "since_ms": h.since_ms,
                 "until_ms": h.until_ms}
                for h in self._halts.values()
            ],
            "now_ms": self._now_ms,
            "seq_ts": self._seq_ts,
            "seq": self._seq,
            "equity": str(self.equity),
            "peak": str(self._peak),
            "day": self._day,
            "day_start": str(self._day_start),
            "trades": self._trades,
            "wins": self._wins,
        }

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        strategy: Algorithm[Any, Any],
        limits: RiskLimits | None = None,
        markets: dict[str, MarketInfo] | None = None,
    ) -> TradingEngine:
        """Rebuild an engine from ``snapshot``; ``limits``/``markets`` override the saved
        ones (the RiskPolicy may have changed while the runner was down)."""
        if snapshot.get("version") != SNAPSHOT_VERSION:
            raise ValueError(
                f"snapshot version {snapshot.get('version')!r} is not {SNAPSHOT_VERSION}"
            )
        saved_markets = {s: from_dict(MarketInfo, m) for s, m in snapshot["markets"].items()}
        lim = limits if limits is not None else RiskLimits.model_validate(snapshot["limits"])
        pf_data = snapshot["portfolio"]
        eng = cls(
            snapshot["name"],
            strategy,
            lim,
            markets if markets is not None else saved_markets,
            Decimal(pf_data["starting_cash"]),
            snapshot.get("quote_asset", "USDT"),
            fee_rate=Decimal(snapshot.get("fee_rate", "0.001")),
            timeframe_ms=snapshot.get("timeframe_ms"),
        )
        eng.portfolio = Portfolio.restore(eng.name, pf_data, eng.quote_asset)
        if limits is not None:
            # the saved stops were placed under the saved policy; protect the positions
            # with the one in force now (as update_limits does for a hot change)
            for pos in eng.portfolio.positions.values():
                pos.stop_price = stop_price_for(pos.average_price, lim)
        eng.controls.restore(snapshot.get("controls", {}))
        eng.tracker.restore(snapshot.get("tracker", {}))
        if "strategy" in snapshot:
            strategy.restore(snapshot["strategy"])
        for sym_state in eng._symbols.values():
            sym_state.step = None
            sym_state.ref = None
        eng._open = {
            o["client_order_id"]: from_dict(Order, o) for o in snapshot.get("open_orders", [])
        }
        eng._reasons = OrderedDict((k, v) for k, v in snapshot.get("reasons", []))
        eng._seen_order = deque(snapshot.get("seen_trades", []))
        eng._seen = set(eng._seen_order)
        eng._marks = {s: Decimal(p) for s, p in snapshot.get("marks", {}).items()}
        for s, data in snapshot.get("symbols", {}).items():
            st = eng._symbols.get(s)
            if st is not None:
                st.last_ts = data.get("last_ts")
                st.interval_ms = int(data.get("interval_ms", 0))
        eng._halts = {
            h["kind"]: Halt(h["kind"], h["reason"], h["by"], int(h["since_ms"]), h.get("until_ms"))
            for h in snapshot.get("halts", [])
        }
        eng._now_ms = int(snapshot.get("now_ms", 0))
        eng._seq_ts = int(snapshot.get("seq_ts", -1))
        eng._seq = int(snapshot.get("seq", 0))
        eng.equity = Decimal(snapshot.get("equity", pf_data["cash"]))
        eng._set_peak(Decimal(snapshot.get("peak", str(eng.equity))))
        eng._day = int(snapshot.get("day", -1))
        eng._next_day_ms = (eng._day + 1) * DAY_MS if eng._day >= 0 else -1
        eng._set_day_start(Decimal(snapshot.get("day_start", str(eng.equity))))
        eng._trades = int(snapshot.get("trades", 0))
        eng._wins = int(snapshot.get("wins", 0))
        return eng


__all__ = [
    "HALT_DAILY",
    "HALT_DRAWDOWN",
    "HALT_MANUAL",
    "PHASE_DISABLED",
    "PHASE_HALTED",
    "PHASE_RUNNING",
    "EngineEvent",
    "Halt",
    "TradingEngine",
]
