"""Typed records of the values kubetrade keeps in Redis, with their Redis encodings.

One class per stored value; ``to_*`` gives exactly what is written, ``from_*`` reads
it back. Readers are tolerant (a runner mid-upgrade may write a field we do not know
or leave one out): a decoded record keeps the stored mapping in ``raw``, so what is
passed through to the API or the dashboard is what was stored, and a field that does
not parse reads as None instead of failing the page. Writers are exact: the encodings
are the ones runners, the operator and the API already read (see ``keys.py``).

=============================  ======================================================
record                         key (``keys.py``)
=============================  ======================================================
``EmergencyState``             ``{p}:emergency`` hash; JSON on ``{p}:emergency:changes``
``EmergencyAck``               ``{p}:emergency:acks`` hash, one JSON value per runner
``StrategySummary``            ``{p}:strategy:{s}:summary`` hash (every value a string)
``ReconciliationRecord``       ``{p}:strategy:{s}:reconciliation`` string (JSON)
=============================  ======================================================

Closed trades, orders, positions (``store.py``), audit entries (``audit.py``) and
alerts (``alerts.py``) are the domain's and those modules' own typed records.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from kubetrade.domain.emergency import EMERGENCY_ACTIONS, EmergencyAction
from kubetrade.domain.models import Mismatch


def dumps(data: Any) -> str:
    """Compact JSON, Decimals and other non-JSON values as strings (the stored form)."""
    return json.dumps(data, default=str, separators=(",", ":"))


def loads_dict(raw: str | None) -> dict[str, Any] | None:
    """A stored JSON object, or None (absent, not JSON, or not an object)."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _int(raw: Any, default: int | None = None) -> int | None:
    if raw is None or raw == "":
        return default
    try:
        return int(float(raw)) if isinstance(raw, str) else int(raw)
    except (TypeError, ValueError, OverflowError):
        return default


def _decimal(raw: Any) -> Decimal | None:
    if raw is None or raw == "":
        return None
    try:
        return Decimal(str(raw))
    except (InvalidOperation, ValueError):
        return None


def _float(raw: Any) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _bool(raw: Any) -> bool | None:
    if isinstance(raw, bool):
        return raw
    if raw in ("True", "true", "1"):
        return True
    if raw in ("False", "false", "0"):
        return False
    return None


# -- the kill switch ----------------------------------------------------------------------


@dataclass(frozen=True)
class EmergencyState:
    """The emergency action in force: ``action`` (an EmergencyAction value), since when
    (epoch ms), by whom and why."""

    action: str = EmergencyAction.NONE.value
    since_ms: int = 0
    by: str = ""
    reason: str = ""
    #: the Emergency's metadata.generation the operator mirrored (None: written by the
    #: API, the bot or ``kubetrade local``, or a Redis-only stop); runners echo it in
    #: their ack. Stored only when set; not part of :meth:`as_dict`.
    generation: int | None = None

    @classmethod
    def new(cls, action: str, since_ms: int, by: str, reason: str) -> EmergencyState:
        """A state to write; raises ValueError for an action that is not an
        EmergencyAction value (the message names the allowed ones)."""
        if action not in EMERGENCY_ACTIONS:
            raise ValueError(
                f"Emergency.spec.action: must be one of {', '.join(EMERGENCY_ACTIONS)}, "
                f"got {action!r}"
            )
        return cls(str(action), since_ms, by, reason)

    @property
    def kind(self) -> EmergencyAction | None:
        """The action as the enum; None for a value no writer of ours produces."""
        return EmergencyAction.parse(self.action)

    def as_dict(self) -> dict[str, Any]:
        """``{"action", "since_ms", "by", "reason"}`` (since_ms an int): the shape
        ``DesiredState.get_emergency``/``set_emergency`` answer."""
        return {"action": self.action, "since_ms": self.since_ms, "by": self.by,
                "reason": self.reason}

    def _stored(self) -> dict[str, Any]:
        out = self.as_dict()
        if self.generation is not None:
            out["generation"] = self.generation
        return out

    def to_hash(self) -> dict[str, str]:
        """The ``{p}:emergency`` hash fields (``generation`` only when set)."""
        return {k: str(v) for k, v in self._stored().items()}

    def to_message(self) -> str:
        """The JSON published on ``{p}:emergency:changes`` (``generation`` only when set)."""
        return json.dumps(self._stored())

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> EmergencyState:
        """Read the hash; an empty hash (never set) is ``none`` since 0."""
        return cls(
            action=raw.get("action") or EmergencyAction.NONE.value,
            since_ms=_int(raw.get("since_ms"), 0) or 0,
            by=raw.get("by", ""),
            reason=raw.get("reason", ""),
            generation=_int(raw.get("generation")),
        )


@dataclass(frozen=True)
class EmergencyAck:
    """A runner's acknowledgement of an emergency action: what it applied, when (epoch
    ms) and the client order ids it cancelled."""

    action: str
    ts_ms: int
    cancelled: tuple[str, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    #: which change was acknowledged (Emergency generation; since_ms of a Redis-only
    #: stop) and by which pod; written only when known
    generation: int | None = None
    since_ms: int | None = None
    pod: str | None = None

    def to_json(self) -> str:
        """The value of the runner's field in ``{p}:emergency:acks``."""
        return dumps(self.as_dict())

    def as_dict(self) -> dict[str, Any]:
        """The stored object as it was read (or as it would be written)."""
        if self.raw:
            return dict(self.raw)
        out: dict[str, Any] = {"action": self.action, "ts_ms": self.ts_ms,
                               "cancelled": list(self.cancelled)}
        for key, value in (("generation", self.generation), ("since_ms", self.since_ms),
                           ("pod", self.pod)):
            if value is not None:
                out[key] = value
        return out

    @classmethod
    def from_json(cls, raw: str | None) -> EmergencyAck | None:
        """None when the value is absent or not a JSON object."""
        data = loads_dict(raw)
        if data is None:
            return None
        cancelled = data.get("cancelled")
        return cls(
            action=str(data.get("action") or ""),
            ts_ms=_int(data.get("ts_ms"), 0) or 0,
            cancelled=tuple(str(c) for c in cancelled) if isinstance(cancelled, list) else (),
            raw=data,
            generation=_int(data.get("generation"), None),
            since_ms=_int(data.get("since_ms"), None),
            pod=str(data["pod"]) if data.get("pod") else None,
        )


# -- per strategy -------------------------------------------------------------------------


def summary_hash(summary: Mapping[str, Any]) -> dict[str, str]:
    """The ``summary`` hash fields of a summary mapping: every value a string, None as
    empty (``True`` -> ``"True"``, Decimal and float as ``str``)."""
    return {key: "" if v is None else str(v) for key, v in summary.items()}


def encode_last_candles(last: Mapping[str, int]) -> str:
    """The summary's ``last_candle_ms`` field: JSON ``{"BTC/USDT": open_ms, ...}``."""
    return json.dumps({str(k): int(v) for k, v in sorted(last.items())}, separators=(",", ":"))


def decode_last_candles(text: str | None) -> dict[str, int] | None:
    """``last_candle_ms`` read back; None when absent or not a JSON object of ints."""
    if not text:
        return None
    try:
        value = json.loads(text)
        return {str(k): int(v) for k, v in value.items()} if isinstance(value, dict) else None
    except (ValueError, TypeError):
        return None


@dataclass(frozen=True)
class StrategySummary:
    """A strategy's summary as a runner last wrote it (``TradingEngine.summary`` plus
    the runner's phase, halted_reason, updated_ms, mode and breaker). Money and
    percentages are Decimal; a field absent or unparsable is None."""

    phase: str = ""
    equity: Decimal | None = None
    cash: Decimal | None = None
    starting_cash: Decimal | None = None
    pnl: Decimal | None = None
    realised_pnl: Decimal | None = None
    fees: Decimal | None = None
    trades: int | None = None
    wins: int | None = None
    win_rate: float | None = None
    open_positions: int | None = None
    open_orders: int | None = None
    halted: bool | None = None
    halted_reason: str = ""
    strategy_enabled: bool | None = None
    consecutive_losses: int | None = None
    daily_loss_pct: Decimal | None = None
    drawdown_pct: Decimal | None = None
    updated_ms: int | None = None
    mode: str = ""
    breaker: str = ""
    #: symbol -> open time (epoch ms) of the newest candle consumed; None from runners
    #: before issue 13 (the field is optional), with the candles' timeframe and source
    last_candle_ms: Mapping[str, int] | None = None
    timeframe: str = ""
    market_data: str = ""
    raw: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> StrategySummary:
        g = raw.get
        return cls(
            phase=g("phase", ""), equity=_decimal(g("equity")), cash=_decimal(g("cash")),
            starting_cash=_decimal(g("starting_cash")), pnl=_decimal(g("pnl")),
            realised_pnl=_decimal(g("realised_pnl")), fees=_decimal(g("fees")),
            trades=_int(g("trades")), wins=_int(g("wins")), win_rate=_float(g("win_rate")),
            open_positions=_int(g("open_positions")), open_orders=_int(g("open_orders")),
            halted=_bool(g("halted")), halted_reason=g("halted_reason", ""),
            strategy_enabled=_bool(g("strategy_enabled")),
            consecutive_losses=_int(g("consecutive_losses")),
            daily_loss_pct=_decimal(g("daily_loss_pct")),
            drawdown_pct=_decimal(g("drawdown_pct")), updated_ms=_int(g("updated_ms")),
            mode=g("mode", ""), breaker=g("breaker", ""),
            last_candle_ms=decode_last_candles(g("last_candle_ms")), timeframe=g("timeframe", ""),
            market_data=g("market_data", ""), raw=dict(raw),
        )

    def to_hash(self) -> dict[str, str]:
        """The stored form: what was read (``raw``), or the typed fields encoded."""
        if self.raw:
            return dict(self.raw)
        values = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "raw"}
        last = values.pop("last_candle_ms")
        if last is not None:
            values["last_candle_ms"] = encode_last_candles(last)
        return summary_hash(values)


@dataclass(frozen=True)
class ReconciliationRecord:
    """The latest reconciliation of a strategy: when (epoch ms), why (``trigger``), the
    outcome (``status``: ok | mismatch | error) and what differed."""

    strategy: str
    ts_ms: int
    trigger: str
    status: str
    ok: bool
    positions_checked: int = 0
    orders_checked: int = 0
    mismatches: tuple[Mismatch, ...] = ()
    error: str = ""
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @staticmethod
    def encode(result: Mapping[str, Any]) -> str:
        """The stored JSON of a result mapping (``ReconciliationResult.to_dict()``)."""
        return dumps(dict(result))

    def as_dict(self) -> dict[str, Any]:
        """The stored object as it was read."""
        return dict(self.raw)

    @classmethod
    def from_json(cls, raw: str | None) -> ReconciliationRecord | None:
        """None when absent or not a JSON object."""
        data = loads_dict(raw)
        if data is None:
            return None
        mismatches = tuple(
            Mismatch(
                kind=str(m.get("kind", "")), subject=str(m.get("subject", "")),
                local=str(m.get("local", "")), exchange=str(m.get("exchange", "")),
                detail=str(m.get("detail", "")),
            )
            for m in data.get("mismatches") or [] if isinstance(m, dict)
        )
        return cls(
            strategy=str(data.get("strategy", "")), ts_ms=_int(data.get("ts_ms"), 0) or 0,
            trigger=str(data.get("trigger", "")), status=str(data.get("status", "")),
            ok=bool(data.get("ok")), positions_checked=_int(data.get("positions_checked"), 0) or 0,
            orders_checked=_int(data.get("orders_checked"), 0) or 0, mismatches=mismatches,
            error=str(data.get("error", "")), raw=data,
        )


@dataclass(frozen=True)
class ReconciliationBaseline:
    """What the account held of each base asset before the strategy first traded
    (asset -> quantity), so reconciliation compares the exchange with the baseline plus
    the strategy's positions. ``{p}:strategy:{s}:baseline`` hash, one decimal string per
    asset; written once, at a live runner's first start."""

    holdings: Mapping[str, Decimal] = field(default_factory=dict)

    def to_hash(self) -> dict[str, str]:
        """The hash fields."""
        return {a: str(v) for a, v in self.holdings.items()}

    @classmethod
    def from_hash(cls, raw: Mapping[str, str]) -> ReconciliationBaseline:
        """Read the hash (empty: none stored). Raises ``decimal.InvalidOperation`` for a
        value that is not a number: a baseline is never guessed."""
        return cls({a: Decimal(v) for a, v in raw.items()})


__all__ = [
    "EmergencyAck",
    "EmergencyState",
    "ReconciliationBaseline",
    "ReconciliationRecord",
    "StrategySummary",
    "dumps",
    "loads_dict",
    "summary_hash",
]
