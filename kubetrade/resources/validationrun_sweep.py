"""The parts of a ValidationRun beyond one run: a range of the candle store to replay,
a parameter sweep (spec) and the sweep's gathered ranking (status)."""

from __future__ import annotations

import math
from decimal import Decimal
from typing import Annotated

from pydantic import Field, model_validator

from kubetrade.resources.common import CRModel, Num

#: What ``kubetrade validate --since/--until`` take: a date, an ISO 8601 time (UTC
#: unless an offset is given) or epoch milliseconds.
TIME_PATTERN = (
    r"^([0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?)?|[0-9]{1,16})$"
)

#: Most combinations one sweep may try (the operator counts them before any Job).
MAX_COMBINATIONS = 100_000

#: Label of a sweep slice's ConfigMap (value: the slice index) and its data keys: the
#: slice's ranking and verdict (JSON, see kubetrade.domain.sweeps), the full report of
#: its best's out-of-sample run, and that run's summary text.
SLICE_LABEL = "kubetrade.io/sweep-slice"
SLICE_KEY = "slice.json"
REPORT_KEY = "report.json"
SUMMARY_KEY = "summary.txt"


def report_config_map_name(validation_run: str) -> str:
    """The ConfigMap holding a ValidationRun's report."""
    return f"{validation_run}-report"[:253]


def slice_config_map_name(validation_run: str, index: int) -> str:
    """The ConfigMap where slice ``index`` of a ValidationRun's sweep reports."""
    suffix = f"-sweep-{index}"
    return validation_run[: 253 - len(suffix)] + suffix


#: CEL rules on the ValidationRun spec (crdgen adds them to the CRD).
SPEC_RULES: tuple[dict[str, str], ...] = (
    {
        "rule": "!has(self.storeRange) || (has(self.replay) && self.replay == 'store')",
        "message": "spec.storeRange needs spec.replay: store",
        "fieldPath": ".storeRange",
        "reason": "FieldValueInvalid",
    },
    {
        "rule": "!has(self.sweep) || has(self.replay)",
        "message": "spec.sweep needs spec.replay (a sweep replays history: a file, "
        "'bundled' or 'store')",
        "fieldPath": ".sweep",
        "reason": "FieldValueRequired",
    },
)


class StoreRange(CRModel):
    """Stored candles of the Strategy's first symbol and timeframe, by open time."""

    since: str = Field(
        max_length=40,
        pattern=TIME_PATTERN,
        description="First candle's open time: YYYY-MM-DD, ISO 8601 (UTC unless an offset "
        "is given) or epoch milliseconds.",
    )
    until: str | None = Field(
        default=None,
        max_length=40,
        pattern=TIME_PATTERN,
        description="Last candle's open time (same forms); default: the last stored (with "
        "download: the last closed candle).",
    )
    download: bool = Field(
        default=False,
        description="Before the run, an init container runs `kubetrade data download` "
        "for this range into the store (resumable; needs the exchange reachable from the "
        "pod). Without it the candles must already be stored.",
    )


class ParameterSweep(CRModel):
    """A grid (or random samples of it) over the Strategy's parameters, walk-forward."""

    parameters: dict[str, Annotated[list[Num], Field(min_length=1, max_length=1000)]] = Field(
        min_length=1,
        max_length=16,
        description="Parameter name -> the values to try, e.g. {fastPeriod: [5, 10, 20], "
        "slowPeriod: [20, 30, 50]}; every combination is a candidate (parameters left out "
        "keep the Strategy's value).",
    )
    samples: int | None = Field(
        default=None, ge=1, le=MAX_COMBINATIONS,
        description="Try only this many combinations, drawn at random (seed) from the grid.",
    )
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seed of samples.")
    in_sample_pct: Num = Field(
        default=Decimal(70), gt=0, lt=100,
        description="Percent of the candles (the first ones) the combinations are ranked "
        "on; the best is judged on the rest (out of sample), and that judgement is the "
        "decision.",
    )
    parallelism: int = Field(
        default=1, ge=1, le=1000,
        description="Pods running at once (the Indexed Job's parallelism).",
    )
    slices: int | None = Field(
        default=None, ge=1, le=10_000,
        description="Slices the combinations are split into (the Job's completions, one "
        "pod each); default: parallelism. Never more than the combinations.",
    )
    top: int = Field(
        default=10, ge=1, le=100,
        description="Best combinations kept in status.sweep.top and the report.",
    )

    @model_validator(mode="after")
    def _bounded(self) -> ParameterSweep:
        count = self.grid_size()
        if min(count, self.samples or count) > MAX_COMBINATIONS:
            raise ValueError(f"spec.sweep: {count} combinations; at most {MAX_COMBINATIONS} "
                             "(use samples)")
        return self

    def grid_size(self) -> int:
        """Points of the full grid."""
        return math.prod(len(v) for v in self.parameters.values())

    def combinations(self) -> int:
        """How many combinations the sweep tries (samples caps the grid)."""
        size = self.grid_size()
        return min(size, self.samples) if self.samples is not None else size


class SweepEntry(CRModel):
    """One combination's in-sample result."""

    parameters: dict[str, Num] = Field(description="The combination.")
    sharpe: float | None = Field(default=None, description="In-sample Sharpe ratio.")
    total_return: float | None = Field(
        default=None, description="In-sample total return, fraction (0.05 = 5%)."
    )
    trades: int | None = Field(default=None, description="In-sample closed trades.")
    max_drawdown: float | None = Field(
        default=None, description="In-sample largest drawdown, fraction."
    )
    error: str | None = Field(
        default=None, max_length=1024, description="Why the combination could not run."
    )


class SweepStatus(CRModel):
    """How far a sweep is and its ranking so far, gathered from the slices' reports."""

    combinations: int = Field(ge=0, description="Combinations the sweep tries.")
    done: int = Field(default=0, ge=0, description="Combinations ranked so far.")
    slices: int = Field(ge=1, description="Slices (the Indexed Job's completions).")
    slices_done: int = Field(default=0, ge=0, description="Slices whose report is complete.")
    parallelism: int = Field(ge=1, description="Pods running at once.")
    best: SweepEntry | None = Field(
        default=None, description="The best in-sample combination so far."
    )
    top: list[SweepEntry] = Field(
        default_factory=list, description="The best combinations, best first (in-sample)."
    )
    winner_slice: int | None = Field(
        default=None, description="Slice whose out-of-sample run of the best is the decision."
    )
