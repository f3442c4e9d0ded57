"""The ValidationRun kind: paper-trade a Strategy and decide GO or NO-GO.

The operator turns it into a Job running ``kubetrade validate``; that command writes
the report to a ConfigMap and the decision into this object's status.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import Field, model_validator

from kubetrade.resources.common import (
    DNS_SUBDOMAIN,
    CRModel,
    CRStatus,
    Num,
    Resource,
    Timestamp,
)
from kubetrade.resources.validationrun_sweep import (
    SPEC_RULES,
    ParameterSweep,
    StoreRange,
    SweepStatus,
)

DURATION_PATTERN = r"^([0-9]+(s|m|h|d))+$"


class GoNoGoCriteria(CRModel):
    """The runbook's thresholds; every one must hold for GO."""

    min_trades: int = Field(default=10, ge=0, le=1_000_000, description="Closed trades needed.")
    min_win_rate_pct: Num = Field(
        default=Decimal(45), ge=0, le=100, description="Smallest win rate, percent."
    )
    min_sharpe: Num = Field(
        default=Decimal("0.5"), ge=-100, le=100, description="Smallest annualised Sharpe."
    )
    max_drawdown_pct: Num = Field(
        default=Decimal(15), ge=0, le=100, description="Largest peak-to-trough drawdown, percent."
    )


class FrictionSpec(CRModel):
    """What trading costs in the run (the paper broker's defaults when left out)."""

    fee_rate_pct: Num = Field(
        default=Decimal("0.1"), ge=0, lt=100,
        description="Fee per fill, percent of its value, both sides (0.1 = Binance spot "
        "taker without BNB).",
    )
    slippage_bps: Num = Field(
        default=Decimal(2), ge=0, lt=10_000,
        description="Market orders fill this many basis points worse than the last price, "
        "both sides.",
    )
    participation_pct: Num = Field(
        default=Decimal(10), gt=0, le=100,
        description="Largest share of a candle's volume a resting limit order fills per "
        "candle, percent.",
    )


class ValidationRunSpec(CRModel):
    """Which Strategy to validate, how, and against which thresholds."""

    strategy_ref: str = Field(
        min_length=1,
        max_length=63,
        pattern=DNS_SUBDOMAIN,
        description="Name of the Strategy in this namespace to validate (its spec is copied; "
        "the Strategy itself keeps running as it is).",
    )
    duration: str = Field(
        default="48h",
        max_length=32,
        pattern=DURATION_PATTERN,
        description="How long to paper-trade forward, e.g. 48h, 90m, 1d12h.",
    )
    replay: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Replay recorded candles at full speed instead of trading forward: a "
        "CSV path in the validation pod (timestamp_ms,open,high,low,close,volume), "
        "'bundled' for the candles shipped with kubetrade, or 'store' for the candle store "
        "(the chart's candle-data volume; the range in storeRange).",
    )
    store_range: StoreRange | None = Field(
        default=None,
        description="With replay: store, which stored candles (the Strategy's first symbol "
        "and its timeframe) and whether to download them first.",
    )
    sweep: ParameterSweep | None = Field(
        default=None,
        description="Try many parameter sets, walk-forward (needs replay): one Indexed Job "
        "whose pods each rank a slice of the combinations on the in-sample candles and "
        "judge their best out of sample; the operator gathers the ranking, and GO/NO-GO "
        "is the out-of-sample verdict of the best in-sample combination.",
    )
    criteria: GoNoGoCriteria = Field(
        default_factory=GoNoGoCriteria, description="GO/NO-GO thresholds."
    )
    friction: FrictionSpec = Field(
        default_factory=FrictionSpec,
        description="Fees, slippage and fill participation of the paper trading.",
    )
    active_deadline_seconds: int | None = Field(
        default=None,
        ge=60,
        description="Fail the Job after this long; default: the duration plus one hour "
        "(a replay: one hour; a sweep: six hours).",
    )

    @model_validator(mode="after")
    def _replay_parts(self) -> ValidationRunSpec:
        """What the CRD's CEL rules (SPEC_RULES) say, for a run checked offline."""
        if self.store_range is not None and self.replay != "store":
            raise ValueError("spec.storeRange needs spec.replay: store")
        if self.sweep is not None and not self.replay:
            raise ValueError("spec.sweep needs spec.replay (a sweep replays history: a "
                             "file, 'bundled' or 'store')")
        return self


class ValidationRunStatus(CRStatus):
    """Follows the Job; the decision and report are written by ``kubetrade validate``."""

    phase: Literal["Pending", "Running", "Succeeded", "Failed"] | None = Field(
        default=None, description="Pending, Running, Succeeded or Failed (follows the Job)."
    )
    decision: Literal["GO", "NO-GO"] | None = Field(
        default=None, description="GO when every criterion held, else NO-GO."
    )
    job: str | None = Field(default=None, description="Name of the validation Job.")
    report_config_map: str | None = Field(
        default=None, description="ConfigMap holding the full JSON report."
    )
    progress: str | None = Field(
        default=None, description="How far the run is, e.g. 37% or 12h of 48h."
    )
    failed_criteria: list[str] = Field(
        default_factory=list, description="Criteria that did not hold, with by how much."
    )
    start_time: Timestamp = Field(default=None, description="When the Job started (RFC 3339).")
    completion_time: Timestamp = Field(
        default=None, description="When the Job finished (RFC 3339)."
    )
    sweep: SweepStatus | None = Field(
        default=None, description="A sweep's progress and ranking, gathered from its slices."
    )


class ValidationRun(Resource):
    """A paper-trading validation of one Strategy, run as a Job."""

    kind: Literal["ValidationRun"] = Field(default="ValidationRun", description="ValidationRun")
    spec: ValidationRunSpec
    status: ValidationRunStatus | None = None


__all__ = [
    "SPEC_RULES", "FrictionSpec", "GoNoGoCriteria", "ParameterSweep", "StoreRange",
    "SweepStatus", "ValidationRun", "ValidationRunSpec", "ValidationRunStatus",
]
