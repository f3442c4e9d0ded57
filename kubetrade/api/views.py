"""Pure conversions from the state records the reader returns to the API's models."""

from typing import Any, Literal, TypeVar, cast

from pydantic import BaseModel

from kubetrade.api import schemas as s
from kubetrade.api.analytics import finite_float
from kubetrade.domain.emergency import EMERGENCY_ACTIONS
from kubetrade.domain.models import ClosedTrade
from kubetrade.domain.timeframes import TIMEFRAME_MS
from kubetrade.state.liveness import REMOVED, STALE, shown_phase
from kubetrade.state.reader import summary_decimal, summary_int
from kubetrade.state.schema import decode_last_candles

#: market data is stale once its newest candle closed this many timeframes ago (the
#: chart's KubetradeMarketDataStale alert uses the same factor)
STALE_TIMEFRAMES = 3

_M = TypeVar("_M", bound=BaseModel)


def emergency_action(value: Any) -> s.EmergencyAction:
    """A stored emergency action as the API spells it; anything unknown is ``none``."""
    action = value or "none"
    return cast(s.EmergencyAction, action) if action in EMERGENCY_ACTIONS else "none"


def is_running(phase: str | None) -> bool:
    return (phase or "").lower() in {"running", "trading"}


Status = Literal["running", "stopping", "stopped", "halted", "stale", "idle"]


def overall_status(action: str, items: list[s.StrategyStatusOut]) -> Status:
    """Under an emergency ``stopped`` once every runner applied it, ``stopping`` until
    then; else ``running`` when a strategy trades unhalted, ``stale`` when none does
    and a runner has gone silent (its phase ``Stale``), ``halted`` when every runner
    is halted, ``idle`` with no strategy. A ``Removed`` strategy (no runner on purpose)
    counts for none of these."""
    items = [i for i in items if i.phase != REMOVED]
    if action != "none":
        return "stopped" if all(i.emergency_applied for i in items) else "stopping"
    if any(is_running(i.phase) and not i.halted_reason for i in items):
        return "running"
    if any(i.phase == STALE for i in items):
        return "stale"
    return "halted" if items else "idle"


def copy_fields(model: type[_M], record: Any, **given: Any) -> _M:
    """``model`` from the attributes of ``record`` named like its fields, except the
    fields ``given`` (values the record does not hold). AttributeError when the record
    lacks one of the other fields."""
    values = {name: getattr(record, name) for name in model.model_fields if name not in given}
    return model(**given, **values)


def trade_out(entry_id: str, t: ClosedTrade) -> s.TradeOut:
    return copy_fields(s.TradeOut, t, id=entry_id)


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


def strategy_stats(summary: dict[str, str] | None, now_ms: int) -> s.StrategyStatsOut | None:
    """A runner's Redis summary as stats (its phase as of ``now_ms``:
    :func:`~kubetrade.state.liveness.shown_phase`); None when it never wrote one."""
    if not summary:
        return None
    return s.StrategyStatsOut(
        phase=shown_phase(summary, now_ms),
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
        copy_fields(s.PositionOut, p, strategy=name)
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
