"""The validation report: one JSON document per run, and the files that hold it.

The report says the decision, each criterion with its shortfall, the metrics, every
trade, the equity curve, and exactly what was run (strategy, parameters, data range,
code version), so a GO can be audited and a NO-GO explained. Money is written as exact
decimal strings, times as ms since the epoch and ISO 8601 UTC.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from kubetrade import __version__
from kubetrade.domain.gonogo import (
    SHARPE_MIN_DAYS,
    SHARPE_MIN_RETURNS,
    Criteria,
    GoNoGo,
    evaluate,
)
from kubetrade.domain.metrics import HEADLINE_METRICS
from kubetrade.domain.models import ClosedTrade
from kubetrade.validation.curve import downsample

log = logging.getLogger("kubetrade.validation")

REPORT_KIND = "kubetrade.io/validation-report"
REPORT_VERSION = 1
METRIC_FIELDS = HEADLINE_METRICS


# -- what was run -----------------------------------------------------------------------


def code_version() -> str:
    """Package version plus the git commit when run from a checkout.

    Images set KUBETRADE_CODE_VERSION at build time (no .git inside); a checkout asks
    git, so a report can always be traced to the code that produced it.
    """
    env = os.environ.get("KUBETRADE_CODE_VERSION")
    if env:
        return env
    git = shutil.which("git")
    if git is None:
        return __version__
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(  # noqa: S603 (fixed argv, no shell)
            [git, "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            [git, "-C", str(root), "status", "--porcelain", "--untracked-files=no", "kubetrade"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}{'.dirty' if dirty else ''}" if sha else __version__


def iso(ts_ms: int) -> str:
    """``ts_ms`` as ISO 8601 UTC ("...Z"). Whole seconds from 1970 to 9999 (every candle
    and trade time: 32k calls for a 300k-candle report) are formatted from the day's
    date, cached, and the time of day, the same text as the datetime way, 1/3 faster."""
    if ts_ms % 1000 or not 0 <= ts_ms < _YEAR_10000_MS:
        return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")
    day, second = divmod(ts_ms // 1000, 86_400)
    hour, rest = divmod(second, 3600)
    minute, sec = divmod(rest, 60)
    return f"{_iso_day(day)}T{hour:02d}:{minute:02d}:{sec:02d}Z"


_YEAR_10000_MS = 253_402_300_800_000


@lru_cache(maxsize=4096)
def _iso_day(day: int) -> str:
    return datetime.fromtimestamp(day * 86_400, tz=UTC).date().isoformat()


# -- the report -------------------------------------------------------------------------


def _number(value: Any) -> int | float | None:
    """Metrics as JSON numbers; non-finite values (an infinite profit factor when there
    were no losing trades, an undefined Sharpe) become null rather than invalid JSON."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    as_float = float(value)
    if as_float != as_float or as_float in (float("inf"), float("-inf")):
        return None
    return as_float


def metrics_to_dict(metrics: Any) -> dict[str, int | float | None]:
    """The report's ``metrics``: ratios as fractions, counts as integers."""
    out: dict[str, int | float | None] = {}
    for name in METRIC_FIELDS:
        if hasattr(metrics, name):
            out[name] = _number(getattr(metrics, name))
        elif isinstance(metrics, Mapping) and name in metrics:
            out[name] = _number(metrics[name])
    return out


def trade_to_dict(t: ClosedTrade) -> dict[str, Any]:
    """A round trip as the report lists it: money as exact decimal strings."""
    return {
        "trade_id": t.trade_id,
        "symbol": t.symbol,
        "entry_time": iso(t.entry_ms),
        "entry_ms": t.entry_ms,
        "entry_price": str(t.entry_price),
        "exit_time": iso(t.exit_ms),
        "exit_ms": t.exit_ms,
        "exit_price": str(t.exit_price),
        "quantity": str(t.quantity),
        "fees": str(t.fees),
        "pnl": str(t.pnl),
        "exit_reason": t.exit_reason,
    }


def equity_to_list(curve: Sequence[tuple[int, Decimal]]) -> list[dict[str, Any]]:
    return [{"ts_ms": ts, "time": iso(ts), "equity": str(eq)} for ts, eq in curve]


@dataclass
class RunInfo:
    """What was run: enough to reproduce the validation exactly."""

    strategy: str
    algorithm: str
    parameters: dict[str, Any]
    symbols: list[str]
    timeframe: str
    mode: str
    """``replay`` or ``forward``."""
    source: str
    """The replayed file, or ``exchange:<url or binance>`` for forward runs."""
    namespace: str = ""
    starting_cash: Decimal = Decimal(10000)
    risk: dict[str, Any] = field(default_factory=dict)
    duration_seconds: int | None = None
    validation_run: str = ""
    friction: dict[str, str] = field(default_factory=dict)
    """Fee rate, slippage (bps), participation and sizing margin the run traded with."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "namespace": self.namespace,
            "algorithm": self.algorithm,
            "parameters": self.parameters,
            "symbols": self.symbols,
            "timeframe": self.timeframe,
            "mode": self.mode,
            "source": self.source,
            "starting_cash": str(self.starting_cash),
            "risk": self.risk,
            "duration_seconds": self.duration_seconds,
            "validation_run": self.validation_run,
            "friction": self.friction,
            "code_version": code_version(),
        }


def build_report(
    run: RunInfo,
    criteria: Criteria,
    metrics: Any,
    trades: Sequence[ClosedTrade],
    equity_curve: Sequence[tuple[int, Decimal]],
    data_start_ms: int | None,
    data_end_ms: int | None,
    candles: int,
    started_ms: int,
    finished_ms: int,
    confidence: Decimal | None = None,
) -> dict[str, Any]:
    """The report of one run (see the module docstring); ``confidence`` as in
    :func:`kubetrade.domain.gonogo.evaluate`."""
    verdict: GoNoGo = evaluate(metrics, criteria, confidence)
    run_dict = run.to_dict()
    run_dict["data"] = {
        "start_ms": data_start_ms,
        "end_ms": data_end_ms,
        "start": iso(data_start_ms) if data_start_ms is not None else None,
        "end": iso(data_end_ms) if data_end_ms is not None else None,
        "candles": candles,
    }
    run_dict["criteria"] = criteria.to_dict()
    run_dict["judging"] = judging(confidence)
    return {
        "kind": REPORT_KIND,
        "version": REPORT_VERSION,
        "decision": verdict.decision,
        "failed_criteria": [r.explain() for r in verdict.failed],
        "insufficient_data": [r.name for r in verdict.insufficient],
        "criteria": verdict.to_dict(),
        "metrics": metrics_to_dict(metrics),
        "trades": [trade_to_dict(t) for t in trades],
        # bounded: the metrics above come from the full curve (equity_curve_points)
        "equity_curve": equity_to_list(downsample(equity_curve)),
        "equity_curve_points": len(equity_curve),
        "run": run_dict,
        "started_ms": started_ms,
        "finished_ms": finished_ms,
        "started": iso(started_ms),
        "finished": iso(finished_ms),
    }


def judging(confidence: Decimal | None) -> dict[str, Any]:
    """How the criteria were judged: the sample rules and the estimators' sources."""
    return {
        "confidence": None if confidence is None else str(confidence),
        "sharpe_min_days": SHARPE_MIN_DAYS,
        "sharpe_min_returns": SHARPE_MIN_RETURNS,
        "sharpe": "annualised, per-candle simple returns of the marked-to-market equity, "
                  "risk-free 0 (empyrical's sharpe_ratio)",
        "sharpe_standard_error": "Lo (2002), The Statistics of Sharpe Ratios, FAJ 58(4), "
                                 "IID returns",
        "win_rate_standard_error": "binomial, sqrt(p(1-p)/n)",
        "drawdown": "marked to market: every candle's equity with open positions at the "
                    "close, not closed trades only",
    }


def report_filename(ts_ms: int) -> str:
    stamp = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"validation_report_{stamp}.json"


def write_report(report: Mapping[str, Any], report_dir: str | Path, ts_ms: int) -> Path:
    """Write ``validation_report_<timestamp>.json`` atomically, never over another report.

    Atomic (temp file + rename) because pre-flight reads these files: a half-written
    report must not be parsed as a missing or failed validation.
    """
    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / report_filename(ts_ms)
    n = 1
    while path.exists():
        path = directory / report_filename(ts_ms).replace(".json", f"-{n}.json")
        n += 1
    tmp = path.with_suffix(".json.tmp")
    # one line: the C encoder (indent= falls back to pure Python, ~10x slower on a long
    # run); people read the HTML page and the summary
    tmp.write_text(json.dumps(report) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_reports(report_dir: str | Path) -> list[dict[str, Any]]:
    """Every readable report in a directory, each with ``_source`` set to its path.

    Unreadable files are skipped (logged): pre-flight must not crash on a stray file.
    """
    directory = Path(report_dir)
    if not directory.is_dir():
        return []
    reports: list[dict[str, Any]] = []
    for path in sorted(directory.glob("validation_report_*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable validation report %s: %s", path, exc)
            continue
        if isinstance(data, dict) and "decision" in data:
            data["_source"] = str(path)
            reports.append(data)
    return reports
