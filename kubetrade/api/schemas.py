"""Request and response models of the API; they are the OpenAPI document.

Money is ``Decimal`` and serialises as a string, so no amount is rounded on its way
to the dashboard. Ratios (win rate, Sharpe, drawdown) are floats: they are computed
for display and never compared with limits.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from kubetrade.domain.risk import RiskLimits

# The values of kubetrade.domain.emergency.EmergencyAction, as a Literal so the OpenAPI
# document inlines them as it always did (tests/unit/api/test_shape.py checks they agree).
EmergencyAction = Literal["none", "stop", "close-all"]


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorOut(_Out):
    detail: Any = Field(description="What went wrong; never a stack trace or a secret.")


class HealthOut(_Out):
    status: Literal["ok", "degraded"]
    redis: Literal["ok", "unreachable"]
    kubernetes: Literal["ok", "unreachable", "not-configured"]
    auth_required: bool
    time_ms: int
    state: str | None = Field(
        default=None, description="where trading state lives (kubetrade local: the "
        "embedded Redis' data directory, or REDIS_URL without credentials)")


class LastCandleOut(_Out):
    symbol: str
    open_ms: int = Field(description="Open time of the newest candle the runner consumed "
                         "(epoch ms).")
    close_ms: int | None = Field(default=None, description="Its close time (epoch ms).")
    stale: bool | None = Field(
        default=None, description="Exchange data whose close is more than 3 timeframes "
        "old (the KubetradeMarketDataStale rule); null for a replay or an unknown timeframe.")


class StrategyStatusOut(_Out):
    name: str
    phase: str | None = Field(default=None, description="What the runner last reported.")
    halted_reason: str | None = None
    updated_ms: int | None = None
    heartbeat_ms: int | None = Field(
        default=None, description="When the runner's loop last said it is alive (epoch ms)."
    )
    emergency_applied: bool | None = Field(
        default=None,
        description="Under an emergency: whether this runner acknowledged carrying out "
        "the action in force (since it was set); null when none is in force.",
    )
    timeframe: str | None = None
    market_data: Literal["exchange", "replay"] | None = None
    last_candles: list[LastCandleOut] = Field(
        default_factory=list, description="Per symbol, the newest candle the runner "
        "consumed; empty until it consumed one (or from a runner that does not say).")


class StatusOut(_Out):
    status: Literal["running", "stopping", "stopped", "halted", "stale", "idle"] = Field(
        description="running: at least one runner trades; stopping: an emergency stop or "
        "close-all is in force but not every runner has acknowledged carrying it out (see "
        "strategies[].emergency_applied); stopped: every runner has; stale: none trades and "
        "a runner has not been heard of for over 60 s (its phase Stale: dead, frozen or "
        "stopped); halted: every runner is halted; idle: no runner state yet."
    )
    emergency: EmergencyAction
    strategies: list[StrategyStatusOut]
    time_ms: int


class TradeOut(_Out):
    id: str = Field(description="Stream id; pass as `cursor` to page on.")
    trade_id: str
    strategy: str
    symbol: str
    quantity: Decimal
    entry_price: Decimal
    exit_price: Decimal
    entry_ms: int
    exit_ms: int
    fees: Decimal
    pnl: Decimal
    exit_reason: str
    fees_estimated: bool = Field(
        default=False, description="A fee paid in another asset (BNB) was valued at a "
        "stale price (docs/metrics.md, fees in any asset).")
    fees_unvalued: str = Field(
        default="", description="Fees no price was known for (e.g. '0.015 BNB'): `pnl` is "
        "not net of them.")


class TradesPage(_Out):
    items: list[TradeOut]
    next_cursor: str | None = Field(description="Cursor of the next (older) page; null at the end.")


class PositionOut(_Out):
    strategy: str
    symbol: str
    quantity: Decimal
    average_price: Decimal
    opened_ms: int
    stop_price: Decimal | None = None
    fees: Decimal


class StrategyPortfolioOut(_Out):
    name: str
    phase: str | None = None
    equity: Decimal | None = None
    pnl: Decimal | None = None
    open_positions: int


class PortfolioOut(_Out):
    equity: Decimal = Field(description="Sum of every strategy's equity (quote asset).")
    pnl: Decimal = Field(description="Sum of every strategy's P&L since it started.")
    open_positions: int
    strategies: list[StrategyPortfolioOut]
    positions: list[PositionOut]
    updated_ms: int | None = None


class StrategyStatsOut(_Out):
    phase: str | None = None
    equity: Decimal | None = None
    pnl: Decimal | None = None
    trades: int | None = None
    win_rate: float | None = None
    open_positions: int | None = None
    halted_reason: str | None = None
    updated_ms: int | None = None


class StrategyOut(_Out):
    name: str
    configured: bool = Field(description="A Strategy (desired state) exists with this name.")
    enabled: bool | None = None
    algorithm: str | None = None
    mode: str | None = None
    symbols: list[str] = Field(default_factory=list)
    timeframe: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    risk_policy_ref: str | None = None
    stats: StrategyStatsOut | None = None


class ToggleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = Field(
        default=None, description="The wanted state; omitted = flip the current one."
    )


class ToggleOut(_Out):
    name: str
    enabled: bool


class EquityPointOut(_Out):
    ts_ms: int
    equity: Decimal


class MetricsOut(_Out):
    trades: int
    win_rate: float | None = None
    sharpe: float | None = None
    max_drawdown: float | None = None
    total_return: float | None = None
    profit_factor: float | None = None
    expectancy: float | None = None
    sharpe_se: float | None = Field(
        default=None, description="Standard error of the Sharpe ratio (Lo 2002, IID).")
    days: float = Field(default=0.0, description="Days of equity the ratios are measured on.")
    returns: int = Field(default=0, description="Per-period returns the Sharpe ratio uses.")
    sharpe_judged: bool = Field(
        default=False,
        description="False when the sample is too small for the Sharpe ratio to mean "
        "anything (fewer than 7 days or 30 returns, as GO/NO-GO's 'insufficient data').")


class AnalyticsBlock(_Out):
    metrics: MetricsOut
    pnl: Decimal = Field(description="Realised P&L: closed trades, net of fees (quote).")
    marked_pnl: Decimal | None = Field(
        default=None,
        description="Equity change over the curve (last - first point): realised plus the "
        "open positions marked to market; the P&L total_return measures. Overall: the sum "
        "of the strategies'. Null without equity points.")
    equity_curve: list[EquityPointOut]


class AnalyticsOut(_Out):
    overall: AnalyticsBlock
    strategies: dict[str, AnalyticsBlock]


class SettingsOut(_Out):
    risk_policy: str = Field(description="Name of the RiskPolicy these limits come from.")
    risk: dict[str, Any] = Field(description="The RiskPolicy spec (camelCase, percent values).")
    runtime: dict[str, Any] = Field(description="Process configuration; secrets masked.")


def _risk_patch_model() -> type[BaseModel]:
    """Every RiskLimits field, optional, with the engine's own bounds and descriptions,
    so the OpenAPI document says exactly what ``PUT /api/settings`` accepts."""
    fields: dict[str, Any] = {}
    for name, info in RiskLimits.model_fields.items():
        inner = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
        fields[name] = (
            inner | None,  # type: ignore[operator]
            Field(default=None, description=info.description),
        )
    model: type[BaseModel] = create_model(
        "RiskPatch",
        __config__=ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid"),
        **fields,
    )
    model.__doc__ = "RiskPolicy fields to change; omitted fields keep their value."
    return model


RiskPatch = _risk_patch_model()


class SettingsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    risk: RiskPatch = Field(  # type: ignore[valid-type]
        description="RiskPolicy fields to change (camelCase or snake_case), e.g. "
        '{"stopLossPct": 4, "maxConcurrentPositions": 2}. Applied live to running strategies.',
        json_schema_extra={"example": {"stopLossPct": 4}},
    )


class AuditOut(_Out):
    id: str
    ts_ms: int
    actor: str
    action: str
    strategy: str
    detail: dict[str, Any]


class AuditPage(_Out):
    items: list[AuditOut]
    next_cursor: str | None


class AckOut(_Out):
    action: str | None = None
    ts_ms: int | None = None
    cancelled: list[str] = Field(default_factory=list)


class EmergencyOut(_Out):
    action: EmergencyAction
    since_ms: int
    by: str
    reason: str
    acks: dict[str, AckOut] = Field(
        description="Per runner: the last emergency action it carried out."
    )
    note: str | None = Field(
        default=None,
        description="What a change did (kubetrade local: which runners took it in "
        "process, and whether it is written to Redis yet, e.g. during a Redis outage).",
    )


class EmergencyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=500)


class PreflightOut(_Out):
    available: bool
    report: dict[str, Any] | None = Field(description="The latest pre-flight report.")
    validation: dict[str, Any] | None = Field(description="The latest validation summary.")


class ReconciliationOut(_Out):
    strategies: dict[str, dict[str, Any] | None] = Field(
        description="Per strategy: the latest reconciliation result (null: none yet)."
    )


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(default="admin", min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenOut(_Out):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - the OAuth token type
    expires_in: int = Field(description="Seconds the access token is valid.")
