"""The runbook's GO/NO-GO gate: the four criteria a paper validation must meet before
real money is risked.

The gate is pure (metrics in, decision out) so the CLI, the cluster Job and the tests
judge a run the same way. Every result carries its shortfall, because the runbook
promises that a NO-GO says *which* criterion failed and *by how much*; an operator who
only reads "NO-GO" cannot decide whether to tune parameters or abandon the strategy.

Ratios are fractions (0.45 means 45%). Values are Decimal so a threshold compares with
an actual exactly as printed, with no float rounding at the boundary.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

GO = "GO"
NO_GO = "NO-GO"

SHARPE_MIN_DAYS = 7
"""A Sharpe ratio from fewer days of equity is not judged ("insufficient data"): one
day of minute returns gives ratios like -123 that say nothing about a strategy."""
SHARPE_MIN_RETURNS = 30
"""Nor from fewer than this many returns (the standard error's asymptotics need some)."""
Z_OF = {Decimal("0.9"): Decimal("1.6449"), Decimal("0.95"): Decimal("1.9600"),
        Decimal("0.99"): Decimal("2.5758")}
"""Two-sided normal quantiles of the confidences ``--confidence`` accepts."""


class Comparison(StrEnum):
    AT_LEAST = ">="
    AT_MOST = "<="


@dataclass(frozen=True)
class CriterionSpec:
    """One row of the runbook's criteria table."""

    key: str
    """Stable identifier, also the override flag's stem (``min_trades`` -> ``--min-trades``)."""
    name: str
    """The runbook's wording, e.g. ``Min Trades``."""
    metric: str
    """Field of the metrics this criterion reads."""
    comparison: Comparison
    description: str


CRITERIA: tuple[CriterionSpec, ...] = (
    CriterionSpec(
        "min_trades", "Min Trades", "trades", Comparison.AT_LEAST,
        "Enough trades for statistical significance",
    ),
    CriterionSpec(
        "min_win_rate", "Win Rate", "win_rate", Comparison.AT_LEAST,
        "Minimum profitable trade ratio",
    ),
    CriterionSpec(
        "min_sharpe", "Sharpe Ratio", "sharpe", Comparison.AT_LEAST,
        "Minimum risk-adjusted return",
    ),
    CriterionSpec(
        "max_drawdown", "Max Drawdown", "max_drawdown", Comparison.AT_MOST,
        "Maximum peak-to-trough decline",
    ),
)


def _to_decimal(value: object, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what}: expected a number, got a boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{what}: must be a finite number, got {value}")
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{what}: {value!r} is not a number") from exc
    if not result.is_finite():
        raise ValueError(f"{what}: must be a finite number, got {value}")
    return result


def parse_fraction(value: object, what: str) -> Decimal:
    """A ratio threshold given as a fraction (``0.45``) or a percentage string (``45%``).

    A bare number above 1 is refused rather than guessed: ``--min-win-rate 45`` would
    otherwise silently demand a 4500% win rate (or, guessed the other way, hide a typo).
    """
    text = str(value).strip()
    if text.endswith("%"):
        result = _to_decimal(text[:-1], what) / 100
    else:
        result = _to_decimal(text, what)
        if result > 1:
            raise ValueError(
                f"{what}: {text} is above 1; give a fraction ({result / 100}) or a "
                f"percentage ({text}%)"
            )
    if result < 0:
        raise ValueError(f"{what}: must be >= 0, got {text}")
    return result


@dataclass(frozen=True)
class Criteria:
    """Thresholds; the defaults are the runbook's table."""

    min_trades: int = 10
    min_win_rate: Decimal = Decimal("0.45")
    min_sharpe: Decimal = Decimal("0.5")
    max_drawdown: Decimal = Decimal("0.15")

    def __post_init__(self) -> None:
        if isinstance(self.min_trades, bool) or not isinstance(self.min_trades, int):
            raise ValueError(f"min_trades: must be an integer, got {self.min_trades!r}")
        if self.min_trades < 0:
            raise ValueError(f"min_trades: must be >= 0, got {self.min_trades}")
        for name in ("min_win_rate", "max_drawdown"):
            value = getattr(self, name)
            if not isinstance(value, Decimal):
                raise ValueError(f"{name}: must be a Decimal fraction, got {value!r}")
            if not Decimal(0) <= value <= Decimal(1):
                raise ValueError(f"{name}: must be a fraction between 0 and 1, got {value}")
        if not isinstance(self.min_sharpe, Decimal):
            raise ValueError(f"min_sharpe: must be a Decimal, got {self.min_sharpe!r}")

    def threshold(self, key: str) -> Decimal:
        return Decimal(getattr(self, key))

    @classmethod
    def from_overrides(cls, overrides: dict[str, Any] | None = None) -> Criteria:
        """Defaults with the given overrides applied; ``None`` values keep the default.

        Accepts snake_case or camelCase keys (the ValidationRun spec is camelCase) and
        strings or numbers, so flags, YAML and JSON all go through one validation.
        """
        base = cls()
        values: dict[str, Any] = {
            "min_trades": base.min_trades,
            "min_win_rate": base.min_win_rate,
            "min_sharpe": base.min_sharpe,
            "max_drawdown": base.max_drawdown,
        }
        aliases = {
            "min_trades": "min_trades", "minTrades": "min_trades",
            "min_win_rate": "min_win_rate", "minWinRate": "min_win_rate",
            "min_sharpe": "min_sharpe", "minSharpe": "min_sharpe",
            "max_drawdown": "max_drawdown", "maxDrawdown": "max_drawdown",
        }
        for raw_key, raw in (overrides or {}).items():
            if raw is None:
                continue
            key = aliases.get(raw_key)
            if key is None:
                raise ValueError(
                    f"criteria: unknown criterion {raw_key!r}; "
                    f"expected one of {sorted(set(aliases.values()))}"
                )
            if key == "min_trades":
                number = _to_decimal(raw, "min_trades")
                if number != number.to_integral_value():
                    raise ValueError(f"min_trades: must be a whole number, got {raw}")
                values[key] = int(number)
            elif key == "min_sharpe":
                values[key] = _to_decimal(raw, "min_sharpe")
            else:
                values[key] = parse_fraction(raw, key)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return {
            "min_trades": self.min_trades,
            "min_win_rate": str(self.min_win_rate),
            "min_sharpe": str(self.min_sharpe),
            "max_drawdown": str(self.max_drawdown),
        }


class MetricsLike(Protocol):
    """What the gate reads from a run's performance metrics."""

    @property
    def trades(self) -> Any: ...

    @property
    def win_rate(self) -> Any: ...

    @property
    def sharpe(self) -> Any: ...

    @property
    def max_drawdown(self) -> Any: ...


@dataclass(frozen=True)
class CriterionResult:
    key: str
    name: str
    comparison: Comparison
    threshold: Decimal
    actual: Decimal | None
    """None when the metric is undefined (e.g. Sharpe of a flat equity curve)."""
    passed: bool
    shortfall: Decimal | None
    """How far the actual misses the threshold (always positive); None when passed,
    or when the actual is undefined and there is no distance to state."""
    description: str = ""
    judged: bool = True
    """False when the sample is too small to judge ("insufficient data"): not passed."""
    sample: dict[str, Any] | None = None
    """What the metric rests on: ``trades``, ``days`` (equity span), ``returns``."""
    standard_error: Decimal | None = None
    """Standard error of ``actual`` (Sharpe: Lo 2002; win rate: binomial)."""
    note: str = ""
    """Why it was not judged."""

    def to_dict(self) -> dict[str, Any]:
        out = self._base_dict()
        if self.sample is not None:
            out.update(judged=self.judged, sample=self.sample, note=self.note,
                       standard_error=None if self.standard_error is None
                       else float(self.standard_error))
        return out

    def _base_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "comparison": self.comparison.value,
            "threshold": _num(self.threshold),
            "actual": None if self.actual is None else _num(self.actual),
            "passed": self.passed,
            "shortfall": None if self.shortfall is None else _num(self.shortfall),
            "description": self.description,
        }

    def explain(self) -> str:
        actual = "undefined" if self.actual is None else _fmt(self.key, self.actual)
        threshold = _fmt(self.key, self.threshold)
        verdict = "PASS" if self.passed else "FAIL" if self.judged else "INSUFFICIENT DATA"
        if self.standard_error is not None:
            actual += f" \u00b1 {_fmt(self.key, self.standard_error)} (SE)"
        text = f"{verdict} {self.name}: {actual} (needs {self.comparison.value} {threshold})"
        if not self.judged:
            text += f", not judged: {self.note}"
        elif not self.passed:
            if self.shortfall is not None:
                text += f", short by {_fmt(self.key, self.shortfall)}"
            else:
                text += ", metric undefined for this run"
        return text


@dataclass(frozen=True)
class GoNoGo:
    decision: str
    results: tuple[CriterionResult, ...] = field(default_factory=tuple)

    @property
    def go(self) -> bool:
        return self.decision == GO

    @property
    def failed(self) -> tuple[CriterionResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def insufficient(self) -> tuple[CriterionResult, ...]:
        """Criteria that could not be judged on this sample (part of ``failed``)."""
        return tuple(r for r in self.results if not r.judged)

    def to_dict(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.results]


def _num(value: Decimal) -> int | float:
    """JSON number for a report: integers stay integers, the rest become floats.

    Reports are read by people and dashboards, which expect numbers; the Decimal
    comparison has already been made exactly before this conversion.
    """
    if value == value.to_integral_value() and value.as_tuple().exponent == 0:
        return int(value)
    return float(value)


def _fmt(key: str, value: Decimal) -> str:
    if key == "min_trades":
        return str(int(value)) if value == value.to_integral_value() else str(value)
    if key in ("min_win_rate", "max_drawdown"):
        return f"{float(value) * 100:.2f}%"
    return f"{float(value):.4f}"


def _actual(metrics: MetricsLike, spec: CriterionSpec) -> Decimal | None:
    raw = getattr(metrics, spec.metric)
    if raw is None:
        return None
    if isinstance(raw, float) and not math.isfinite(raw):
        return None
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def evaluate_criterion(
    spec: CriterionSpec, threshold: Decimal, actual: Decimal | None
) -> CriterionResult:
    if actual is None:
        passed = False
        shortfall: Decimal | None = None
    elif spec.comparison is Comparison.AT_LEAST:
        passed = actual >= threshold
        shortfall = None if passed else threshold - actual
    else:
        passed = actual <= threshold
        shortfall = None if passed else actual - threshold
    return CriterionResult(
        key=spec.key,
        name=spec.name,
        comparison=spec.comparison,
        threshold=threshold,
        actual=actual,
        passed=passed,
        shortfall=shortfall,
        description=spec.description,
    )


def _sample(metrics: MetricsLike, spec: CriterionSpec) -> dict[str, Any] | None:
    """What the criterion's metric rests on, when the metrics say (PerformanceMetrics)."""
    days = getattr(metrics, "days", None)
    if days is None:
        return None
    trades = int(getattr(metrics, "trades", 0) or 0)
    if spec.key in ("min_trades", "min_win_rate"):
        return {"trades": trades, "days": round(float(days), 3)}
    return {"days": round(float(days), 3), "returns": int(getattr(metrics, "returns", 0))}


def _judge(result: CriterionResult, metrics: MetricsLike, z: Decimal | None) -> CriterionResult:
    """``result`` marked "insufficient data" when its sample cannot support a verdict:
    Sharpe from under SHARPE_MIN_DAYS days or SHARPE_MIN_RETURNS returns, win rate of no
    trade, and with a confidence (``z``) a Sharpe or win rate whose threshold lies
    within z standard errors of the estimate."""
    sample = _sample(metrics, CRITERIA_BY_KEY[result.key])
    if sample is None:
        return result
    se: Decimal | None = None
    note = ""
    if result.key == "min_sharpe":
        raw_se = getattr(metrics, "sharpe_se", None)
        se = Decimal(str(raw_se)) if raw_se is not None else None
        if sample["days"] < SHARPE_MIN_DAYS or sample["returns"] < SHARPE_MIN_RETURNS:
            note = (f"{sample['days']:g} days, {sample['returns']} returns of equity "
                    f"(needs {SHARPE_MIN_DAYS} days and {SHARPE_MIN_RETURNS} returns)")
    elif result.key == "min_win_rate":
        n = sample["trades"]
        if n == 0:
            note = "no trades"
        elif result.actual is not None:
            p = result.actual
            se = (p * (1 - p) / n).sqrt()
    if not note and z is not None and se is not None and result.actual is not None and (
        abs(result.actual - result.threshold) < z * se
    ):
        note = (f"the threshold is within {z} standard errors of the estimate "
                f"(not decidable at this confidence)")
    judged = not note
    return replace(result, passed=result.passed and judged,
                   shortfall=result.shortfall if judged else None,
                   judged=judged, sample=sample, standard_error=se, note=note)


CRITERIA_BY_KEY = {c.key: c for c in CRITERIA}


def evaluate(
    metrics: MetricsLike, criteria: Criteria | None = None, confidence: Decimal | None = None
) -> GoNoGo:
    """GO only when every criterion passes; the results keep the runbook's order.

    A criterion whose sample cannot support a verdict is "insufficient data" (see
    ``_judge``): not passed, so the decision is NO-GO, and said so. ``confidence``
    (0.9, 0.95 or 0.99; None = off) also refuses a Sharpe ratio or win rate whose
    threshold lies inside its two-sided confidence interval.
    """
    criteria = criteria or Criteria()
    z = None
    if confidence is not None:
        if confidence not in Z_OF:
            raise ValueError(f"confidence: {confidence} is not one of 0.9, 0.95, 0.99")
        z = Z_OF[confidence]
    results = tuple(
        _judge(evaluate_criterion(spec, criteria.threshold(spec.key), _actual(metrics, spec)),
               metrics, z)
        for spec in CRITERIA
    )
    decision = GO if all(r.passed for r in results) else NO_GO
    return GoNoGo(decision=decision, results=results)


__all__ = [
    "CRITERIA",
    "GO",
    "NO_GO",
    "SHARPE_MIN_DAYS",
    "Comparison",
    "Criteria",
    "CriterionResult",
    "CriterionSpec",
    "GoNoGo",
    "MetricsLike",
    "evaluate",
    "evaluate_criterion",
    "parse_fraction",
]
