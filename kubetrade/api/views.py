"""Pure conversions from the state records the reader returns to the API's models."""

from typing import Any, Literal, cast

from kubetrade.api import schemas as s
from kubetrade.api.analytics import finite_float
from kubetrade.domain.emergency import EMERGENCY_ACTIONS
from kubetrade.domain.models import ClosedTrade
from kubetrade.domain.timeframes import TIMEFRAME_MS
from kubetrade.state.reader import summary_decimal, summary_int
from kubetrade.state.schema import decode_last_candles

#: market data is stale once its newest candle closed this many timeframes ago (the
#: chart's KubetradeMarketDataStale alert uses the same factor)
STALE_TIMEFRAMES = 3


def emergency_action(value: Any) -> s.EmergencyAction:
    """A stored emergency action as the API spells it; anything unknown is ``none``."""
    action = value or "none"
    return cast(s.EmergencyAction, action) if action in EMERGENCY_ACTIONS else "none"


def is_running(phase: str | None) -> bool:
    return (phase or "").lower() in {"running", "trading"}


Status = Literal["running", "stopping", "stopped", "halted", "idle"]


def overall_status(action: str, items: list[s.StrategyStatusOut]) -> Status:
    """Under an emergency ``stopped`` once every runner applied it, ``stopping`` until
    then; else ``running`` when a strategy trades unhalted, ``halted`` when none does,
    ``idle`` with no strategy."""
    if action != "none":
        return "stopped" if all(i.emergency_applied for i in items) else "stopping"
    if any(is_running(i.phase) and not i.halted_reason for i in items):
        return "running"
    return "halted" if items else "idle"


def trade_out(entry_id: str, t: ClosedTrade) -> s.TradeOut:
    return s.TradeOut(
        id=entry_id,
        trade_id=t.trade_id,
        strategy=t.strategy,
        symbol=t.symbol,
        quantity=t.quantity,
        entry_price=t.entry_price,
        exit_price=t.exit_price,
        entry_ms=t.entry_ms,
        exit_ms=t.exit_ms,
        fees=t.fees,
        pnl=t.pnl,
        exit_reason=t.exit_reason,
        fees_estimated=t.fees_estimated,
        fees_unvalued=t.fees_unvalued,
    )


def market_data_kind(value: str | None) -> Literal["exchange", "replay"] | None:
    """The summary's ``market_data`` field; None when absent or unknown."""
    if value == "exchange":
        return "exchange"
    return "replay" if value == "replay" else None


def last_candles_out(summary: dict[str, str], now_ms: int) -> list[s.LastCandleOut]:
    """The summary's newest candle per symbol (symbol order); ``stale`` when exchange
    data closed more than ``STALE_TIMEFRAMES`` timeframes before ``now_ms``."""
    tf_ms = TIMEFRAME_MS.get(summary.get("timeframe") or "")
    live = summary.get("market_data") == "exchange"
    out = []
    for symbol, open_ms in sorted((decode_last_candles(summary.get("last_candle_ms")) or {})
                                  .items()):
        close_ms = open_ms + tf_ms if tf_ms else None
        stale = None
        if close_ms is not None and tf_ms and live:
            stale = now_ms - close_ms > STALE_TIMEFRAMES * tf_ms
        out.append(s.LastCandleOut(symbol=symbol, open_ms=open_ms, close_ms=close_ms,
                                   stale=stale))
    return out


def strategy_stats(summary: dict[str, str] | None) -> s.StrategyStatsOut | None:
    """A runner's Redis summary as stats; None when it never wrote one."""
    if not summary:
        return None
    return s.StrategyStatsOut(
        phase=summary.get("phase") or None,
        equity=summary_decimal(summary, "equity"),
        pnl=summary_decimal(summary, "pnl"),
        trades=summary_int(summary, "trades"),
        win_rate=finite_float(summary.get("win_rate") or None),
        open_positions=summary_int(summary, "open_positions"),
        halted_reason=summary.get("halted_reason") or None,
        updated_ms=summary_int(summary, "updated_ms"),
    )


def positions_out(positions: dict[str, list[Any]]) -> list[s.PositionOut]:
    """Open positions by strategy name, flattened in name order."""
    return [
        s.PositionOut(
            strategy=name,
            symbol=p.symbol,
            quantity=p.quantity,
            average_price=p.average_price,
            opened_ms=p.opened_ms,
            stop_price=p.stop_price,
            fees=p.fees,
        )
        for name, plist in sorted(positions.items())
        for p in plist
    ]


def emergency_out(state: dict[str, Any], acks: dict[str, dict[str, Any]]) -> s.EmergencyOut:
    """The Emergency resource's state and each runner's acknowledgement."""
    return s.EmergencyOut(
        action=emergency_action(state.get("action")),
        since_ms=int(state.get("since_ms") or 0),
        by=str(state.get("by") or ""),
        reason=str(state.get("reason") or ""),
        acks={
            r: s.AckOut(
                action=a.get("action"),
                ts_ms=a.get("ts_ms") if isinstance(a.get("ts_ms"), int) else None,
                cancelled=[str(c) for c in a.get("cancelled") or []],
            )
            for r, a in acks.items()
        },
    )


def emergency_applied(
    state: dict[str, Any], ack: dict[str, Any] | None
) -> bool | None:
    """Did the runner with ``ack`` carry out the emergency ``state`` in force (an ack of
    its action, written at or after it was set)? None when no emergency is in force."""
    action = emergency_action(state.get("action"))
    if action == "none":
        return None
    if not ack or ack.get("action") != action:
        return False
    since = int(state.get("since_ms") or 0)
    acked = ack.get("since_ms") if isinstance(ack.get("since_ms"), int) else ack.get("ts_ms")
    return isinstance(acked, int) and acked >= since
