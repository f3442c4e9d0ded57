"""The validation report as people read it: the stdout summary (also the Telegram
alert's text and the ConfigMap's ``summary.txt``)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _refused(sweep: dict[str, Any]) -> str:
    """`` (N refused, e.g. "fastPeriod=30 slowPeriod=10: ...")`` when any combination
    could not run; they are not ranked, and a reader must not take the count for
    combinations that traded."""
    refused = [t for t in sweep.get("top", []) if "error" in t]
    count = sweep.get("refused", len(refused))
    if not count:
        return ""
    example = ""
    if refused:
        shown = " ".join(f"{k}={v}" for k, v in refused[0]["parameters"].items())
        example = f", e.g. {shown}: {refused[0]['error']}"
    return f" ({count} refused{example})"


def _pct(value: float | int | str | None) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.2f}%"


def _fix(value: float | int | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def format_summary(report: Mapping[str, Any], location: str = "") -> str:
    """The stdout summary: verdict first, then why, then what was run."""
    run = report["run"]
    data = run.get("data", {})
    m = report["metrics"]
    decision = report["decision"] + _why(report)
    lines = [
        f"Validation of {run['strategy']} ({run['algorithm']} {json.dumps(run['parameters'])})"
        f": {decision}",
        f"  data: {run['mode']} {run['source']} {data.get('start')} .. {data.get('end')} "
        f"({data.get('candles')} candles), code {run['code_version']}",
        f"  trades {m.get('trades')}, win rate {_pct(m.get('win_rate'))}, "
        f"Sharpe {_fix(m.get('sharpe'))}, max drawdown {_pct(m.get('max_drawdown'))}, "
        f"total return {_pct(m.get('total_return'))}, "
        f"profit factor {_fix(m.get('profit_factor'), 2)}",
    ]
    sweep = report.get("sweep")
    if sweep:
        lines.append(
            f"  sweep: {sweep['combinations']} combinations{_refused(sweep)} ranked on "
            f"{sweep['in_sample']['candles']} in-sample candles, best "
            f"{json.dumps(sweep['best']['parameters'])} (in-sample Sharpe "
            f"{_fix(sweep['best'].get('sharpe'))}); verdict from the "
            f"{sweep['out_of_sample']['candles']} out-of-sample candles")
    friction = run.get("friction")
    if friction:
        lines.append(
            f"  friction: fee {_pct(friction['fee_rate'])} per fill, slippage "
            f"{friction['slippage_bps']} bps per market order, limit fills <= "
            f"{_pct(friction['participation'])} of a candle's volume, entries sized with a "
            f"{_pct(friction['sizing_margin'])} price margin")
    lines.append("  criteria:")
    for c in report["criteria"]:
        lines.append(f"    {_explain(c)}")
    if location:
        lines.append(f"  report: {location}")
    return "\n".join(lines)


def _why(report: Mapping[str, Any]) -> str:
    """' (failed: A, B; insufficient data: C)': the criteria judged and failed first, so
    an unjudged Sharpe ratio never hides a real failure in the headline."""
    failed = [c["name"] for c in report["criteria"]
              if c.get("judged", True) and not c["passed"]]
    unjudged = report.get("insufficient_data") or []
    parts = ([f"failed: {', '.join(failed)}"] if failed else []) + (
        [f"insufficient data: {', '.join(unjudged)}"] if unjudged else [])
    return f" ({'; '.join(parts)})" if parts else ""


def _explain(c: Mapping[str, Any]) -> str:
    key = c["key"]

    def show(v: Any) -> str:
        if v is None:
            return "undefined"
        if key in ("min_win_rate", "max_drawdown"):
            return _pct(v)
        if key == "min_trades":
            return str(v)
        return _fix(v)

    judged = c.get("judged", True)
    verdict = "PASS" if c["passed"] else "FAIL" if judged else "INSUFFICIENT DATA"
    actual = show(c["actual"])
    if c.get("standard_error") is not None:
        actual += f" \u00b1 {show(c['standard_error'])} (SE)"
    text = f"{verdict} {c['name']}: {actual} (needs {c['comparison']} {show(c['threshold'])})"
    if not judged:
        text += f", not judged: {c.get('note')}"
    elif not c["passed"] and c.get("shortfall") is not None:
        text += f", short by {show(c['shortfall'])}"
    sample = c.get("sample")
    if sample:
        text += " [" + ", ".join(f"{v:g} {k}" for k, v in sample.items()) + "]"
    return text
