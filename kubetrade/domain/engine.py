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
against a stale reference. Halts (``daily_loss``, ``max_drawdown``, ``manual``: see
``halts.py``) block new entries; which exits still go out is said in ``decisions.py``.

Hot path: per candle the engine does one float conversion for the strategy and a few
Decimal comparisons; Decimal arithmetic happens when a position is marked, an order is
sized or a fill is booked.

Where the parts live: equity and the halts in ``halts.py`` (EquityGuard), open orders,
client ids and seen trades in ``ledger.py`` (OrderLedger), entry and exit decisions in
``decisions.py`` (OrderDesk), the event queue and the engine's time in ``journal.py``,
the snapshot format in ``engine_snapshot.py``, the per-symbol state and the held
position's bulk marking (``on_held_candles``, for replays) in ``held.py``. This class
wires them and feeds them candles and fills.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

from kubetrade.domain import events as ev
from kubetrade.domain.algorithms import Algorithm
from kubetrade.domain.decisions import OrderDesk
from kubetrade.domain.engine_snapshot import (
    SNAPSHOT_VERSION,
    check_version,
    restore_state,
    snapshot_of,
)
from kubetrade.domain.events import EngineEvent
from kubetrade.domain.fills import FillBooker
from kubetrade.domain.halts import DAY_MS, HALT_DAILY, HALT_DRAWDOWN, HALT_MANUAL, EquityGuard, Halt
from kubetrade.domain.held import SymbolState, mark_held
from kubetrade.domain.journal import EventJournal
from kubetrade.domain.ledger import OrderLedger
from kubetrade.domain.models import (
    Candle,
    ClosedTrade,
    Fill,
    MarketInfo,
    Order,
    OrderStatus,
    Position,
    Side,
    from_dict,
)
from kubetrade.domain.portfolio import Portfolio
from kubetrade.domain.risk import PreTradeControls, RiskLimits, stop_price_for
from kubetrade.domain.tracker import StrategyTracker

PHASE_RUNNING = "Running"
PHASE_HALTED = "Halted"
PHASE_DISABLED = "Disabled"


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
        self._symbols: dict[str, SymbolState] = {
            s: SymbolState(m) for s, m in self.markets.items()
        }
        self._journal = EventJournal(strategy_name)
        self._ledger = OrderLedger(strategy_name)
        self._guard = EquityGuard(limits, self._journal, starting_cash)
        self._desk = OrderDesk(
            markets=self.markets, limits=limits, fee_rate=fee_rate, portfolio=self.portfolio,
            controls=self.controls, tracker=self.tracker, guard=self._guard,
            ledger=self._ledger, journal=self._journal,
        )
        self._marks: dict[str, Decimal] = {}
        self._fills = FillBooker(
            markets=self.markets, limits=limits, portfolio=self.portfolio, marks=self._marks,
            tracker=self.tracker, guard=self._guard, ledger=self._ledger, journal=self._journal,
        )

    # ------------------------------------------------------------------ queries

    @property
    def order_id_source(self) -> str | None:
        """What client order ids derive from when it differs from the displayed name
        (a runner qualifies it with its namespace so two same-named Strategies on one
        exchange account never share ids)."""
        return self._ledger.id_source

    @order_id_source.setter
    def order_id_source(self, value: str | None) -> None:
        self._ledger.id_source = value

    @property
    def equity(self) -> Decimal:
        """Cash plus positions at their last marks (kept current; read it, do not set)."""
        return self._guard.equity

    @property
    def is_halted(self) -> bool:
        return bool(self._guard.halts)

    @property
    def halts(self) -> dict[str, Halt]:
        return dict(self._guard.halts)

    @property
    def halted_reason(self) -> str:
        return self._guard.halted_reason

    @property
    def open_orders(self) -> list[Order]:
        return list(self._ledger.open.values())

    @property
    def positions(self) -> dict[str, Position]:
        return dict(self.portfolio.positions)

    @property
    def marks(self) -> dict[str, Decimal]:
        return dict(self._marks)

    @property
    def phase(self) -> str:
        if self._guard.halts:
            return PHASE_HALTED
        if not self.tracker.enabled:
            return PHASE_DISABLED
        return PHASE_RUNNING

    def summary(self) -> dict[str, Any]:
        """What the runner publishes as the strategy's summary (money as strings)."""
        pf = self.portfolio
        trades, wins = self._fills.trades, self._fills.wins
        risk = self.risk_state()
        return {
            "phase": self.phase,
            "equity": str(self.equity),
            "cash": str(pf.cash),
            "starting_cash": str(pf.starting_cash),
            "pnl": str(self.equity - pf.starting_cash),
            "realised_pnl": str(pf.realised_pnl),
            "fees": str(pf.fees_paid),
            "trades": trades,
            "wins": wins,
            "win_rate": wins / trades if trades else 0.0,
            "open_positions": len(pf.positions),
            "open_orders": len(self._ledger.open),
            "halted": bool(self._guard.halts),
            "halted_reason": self.halted_reason,
            "strategy_enabled": self.tracker.enabled,
            "consecutive_losses": self.tracker.consecutive_losses,
            "daily_loss_pct": str(risk["daily_loss_pct"].quantize(Decimal("0.0001"))),
            "drawdown_pct": str(risk["drawdown_pct"].quantize(Decimal("0.0001"))),
            "updated_ms": self._journal.now_ms,
        }

    def risk_state(self) -> dict[str, Any]:
        """How close the equity rules are to firing, for dashboards and alert rules.

        ``daily_loss_pct``: percent below the UTC day's starting equity (0 if above);
        ``drawdown_pct``: percent below peak equity; ``*_used_ratio``: that value over
        its limit (1.0 = the halt fires; 0 when the limit is off).
        """
        return self._guard.risk_state()

    def drain_events(self) -> list[EngineEvent]:
        return self._journal.drain()

    # ------------------------------------------------------------------ helpers

    def _bind(self, symbol: str) -> Callable[[Candle], Side | None]:
        """The algorithm's per-symbol candle step, bound once (saves a lookup per candle)."""
        bind_candle = getattr(self.strategy, "bind_candle", None)
        if bind_candle is not None:
            bound: Callable[[Candle], Side | None] = bind_candle(symbol)
            return bound
        update = self.strategy.update
        return lambda candle: update(symbol, float(candle.close))

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
        self._journal.now_ms = now
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
            self._protect_and_mark(symbol, pos, candle, now, orders)
        if close_ms >= self._guard.next_day_ms:
            # after the mark: the new day's baseline is the equity at midnight (this
            # candle's close), and this candle's loss was judged against the old day's
            self._guard.new_day(close_ms // DAY_MS, now)
        tracker = self.tracker
        if not tracker.enabled:
            change = tracker.check(now)
            if change is not None:
                self._journal.tracker_change(change, from_check=True)
        step = st.step
        if step is None:
            step = st.step = self._bind(symbol)
        signal = step(candle)
        if signal is None:
            return orders
        if signal is Side.BUY:
            self._desk.entry(symbol, st.market, close, now, orders)
        else:
            self._desk.signal_exit(symbol, close, now, orders)
        return orders

    def _protect_and_mark(
        self, symbol: str, pos: Position, candle: Candle, now: int, orders: list[Order]
    ) -> None:
        """A held position on a new candle: its stop-loss, then equity at the close."""
        close = candle.close
        stop = pos.stop_price
        # only an exit already on its way holds the stop back (selling twice); an
        # entry still open must not leave what is held unprotected
        if stop is not None and candle.low <= stop and not self._ledger.exiting(symbol):
            self._desk.stop_loss(symbol, pos, candle, close, now, orders)
        pf = self.portfolio
        if len(pf.positions) == 1 and not pf.dust:
            # FillBooker.mark_one inlined: the per-candle cost of holding a position
            self._guard.mark(pf.cash + pos.quantity * close)
        else:
            self._fills.mark()

    def on_held_candles(
        self, symbol: str, opens_ms: Sequence[int], closes: Sequence[Decimal]
    ) -> list[Decimal]:
        """What ``on_candle`` does for candles of the one position held that cannot
        change anything but its mark (a replay's bulk path; see ``held.py``), at a
        fraction of the cost. Returns the equity after each candle.

        The caller vouches that the algorithm signals on none of them (it is not
        stepped) and that each low is above the position's stop. Raises ``ValueError``
        when anything else would make a candle matter: no fixed timeframe, another
        position or dust held, an order open, a UTC day or a tracker check beginning
        by the last close, or a candle not newer than the last one seen.
        """
        if not opens_ms:
            return []
        pf, st = self.portfolio, self._symbols[symbol]
        pos = pf.positions.get(symbol)
        last_close = opens_ms[-1] + (self.timeframe_ms or 0)
        next_check = self.tracker.next_check_ms
        if (not self.timeframe_ms or pos is None or len(pf.positions) != 1 or pf.dust
                or self._ledger.open or st.ref is None
                or last_close >= self._guard.next_day_ms
                or (not self.tracker.enabled and next_check is not None
                    and last_close >= next_check)):
            raise ValueError(f"{symbol}: these candles need on_candle, not the held path")
        out = mark_held(st, self._guard, self._journal, pf.cash, pos.quantity, opens_ms,
                        closes, self.timeframe_ms)
        self._marks[symbol] = closes[-1]
        return out

    # ------------------------------------------------------------------ execution

    def on_order_update(self, order: Order) -> None:
        """Record what the exchange says about one of our orders."""
        cid = order.client_order_id
        open_orders = self._ledger.open
        known = open_orders.get(cid)
        if order.status.is_terminal:
            open_orders.pop(cid, None)
            if order.status is not OrderStatus.FILLED:
                self._journal.emit(
                    f"order_{order.status.value}",
                    order.reason or f"order {order.status.value} by the exchange",
                    symbol=order.symbol,
                    side=str(order.side),
                    client_order_id=cid,
                    filled_quantity=str(order.filled_quantity),
                )
        elif known is not None or order.strategy == self.name:
            open_orders[cid] = order
        self._journal.advance(order.updated_ms)

    def on_fill(self, fill: Fill) -> list[ClosedTrade]:
        """Book one execution; a trade id seen before is ignored (idempotent).

        Raises ``ValueError`` for a symbol without MarketInfo and ``BooksMismatch``
        (audited as a reconciliation alert) for a fill our books cannot take.
        """
        return self._fills.on_fill(fill)

    # ------------------------------------------------------------------ control

    def halt(self, reason: str, by: str, ts_ms: int | None = None) -> None:
        """Kill switch: no new orders (except stop-loss and close_all) until resume."""
        now = self._journal.now_ms if ts_ms is None else ts_ms
        self._guard.halt_manual(reason, by, now)
        self._journal.emit("halt", reason, actor=by, ts_ms=now, rule=HALT_MANUAL)

    def resume(self, by: str, ts_ms: int | None = None) -> None:
        """A person lifts the manual and the drawdown halts; when a drawdown halt is
        lifted the peak restarts at current equity (else it would halt again at once).
        The daily-loss halt stays until the next UTC day."""
        now = self._journal.now_ms if ts_ms is None else ts_ms
        lifted = self._guard.lift_for_resume()
        self._journal.emit(
            "resume",
            f"resumed by {by}" + (f"; lifted {', '.join(lifted)}" if lifted else ""),
            actor=by,
            ts_ms=now,
            lifted=lifted,
            still_halted=self.halted_reason,
        )

    def enable_strategy(self, by: str, ts_ms: int | None = None) -> None:
        """A person re-enables a strategy the tracker disabled."""
        change = self.tracker.enable(self._journal.now_ms if ts_ms is None else ts_ms, by)
        if change is not None:
            self._journal.tracker_change(change)

    def close_all(self, ts_ms: int) -> list[Order]:
        """Market sells for every position (emergency close-all), bypassing halts."""
        self._journal.advance(ts_ms)
        return self._desk.close_all(ts_ms, self._marks)

    def update_reference(self, symbol: str, price: Decimal, ts_ms: int) -> None:
        """A fresher reference price (e.g. the ticker) for the price collar."""
        self.controls.set_reference(symbol, price, ts_ms)

    def update_limits(self, limits: RiskLimits) -> None:
        """Hot change of the RiskPolicy: thresholds, stops and tracker follow at once."""
        old = self.limits
        self.limits = limits
        self.controls.limits = limits
        self._desk.limits = limits
        self._fills.limits = limits
        self.tracker.configure(
            limits.strategy_max_consecutive_losses, limits.strategy_re_enable_check_hours
        )
        self._guard.set_limits(limits)
        for pos in self.portfolio.positions.values():
            pos.stop_price = stop_price_for(pos.average_price, limits)
        changed = {
            k: {"old": str(v), "new": str(getattr(limits, k))}
            for k, v in old
            if getattr(limits, k) != v
        }
        self._journal.emit(
            "limits_updated", "risk policy changed", actor=ev.ACTOR_RISK, changed=changed
        )

    # ------------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue after SIGKILL, as JSON-able data (the format:
        ``engine_snapshot.py``)."""
        return snapshot_of(self)

    @classmethod
    def restore(
        cls,
        snapshot: dict[str, Any],
        strategy: Algorithm[Any, Any],
        limits: RiskLimits | None = None,
        markets: dict[str, MarketInfo] | None = None,
    ) -> TradingEngine:
        """Rebuild an engine from ``snapshot``; ``limits``/``markets`` override the saved
        ones (the RiskPolicy may have changed while the runner was down).

        Raises ``ValueError`` when the snapshot's version is not SNAPSHOT_VERSION.
        """
        check_version(snapshot)
        saved_markets = {s: from_dict(MarketInfo, m) for s, m in snapshot["markets"].items()}
        lim = limits if limits is not None else RiskLimits.model_validate(snapshot["limits"])
        eng = cls(
            snapshot["name"],
            strategy,
            lim,
            markets if markets is not None else saved_markets,
            Decimal(snapshot["portfolio"]["starting_cash"]),
            snapshot.get("quote_asset", "USDT"),
            fee_rate=Decimal(snapshot.get("fee_rate", "0.001")),
            timeframe_ms=snapshot.get("timeframe_ms"),
        )
        restore_state(eng, snapshot, strategy, restop=limits is not None)
        return eng


__all__ = [
    "HALT_DAILY",
    "HALT_DRAWDOWN",
    "HALT_MANUAL",
    "PHASE_DISABLED",
    "PHASE_HALTED",
    "PHASE_RUNNING",
    "SNAPSHOT_VERSION",
    "EngineEvent",
    "Halt",
    "TradingEngine",
]


def use_step(engine: TradingEngine, symbol: str, step: Callable[[Candle], Side | None]) -> None:
    """Replace ``symbol``'s per-candle algorithm step in ``engine``: a replay that runs the
    algorithm itself over float closes passes one returning what it decided."""
    engine._symbols[symbol].step = step
