"""What the operator reads on the phone: alert messages and command replies.

Plain text on purpose (no Markdown/HTML parse mode): alert titles and reasons come
from runners and exchanges, and one stray ``_`` or ``<`` would make Telegram refuse
the whole message with 400 — an alert that cannot be sent is worse than an ugly one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from kubetrade.domain.emergency import EmergencyAction
from kubetrade.notify.paging import MAX_MESSAGE as MAX_MESSAGE  # re-exported
from kubetrade.notify.paging import fit
from kubetrade.state.alerts import Alert, Severity
from kubetrade.state.liveness import shown_phase

_BUDGET = 3900  # headroom for the header and a "(continued)" marker
_PER_ALERT_IN_GROUP = 400

ICONS = {Severity.INFO: "ℹ️", Severity.WARNING: "⚠️", Severity.CRITICAL: "🚨"}  # noqa: RUF001


def when(ts_ms: int) -> str:
    if ts_ms <= 0:
        return "?"
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def format_alert(alert: Alert, repeated: bool = False) -> str:
    """One alert as its own message."""
    icon = ICONS.get(alert.severity, "")
    lines = [f"{icon} {alert.title or alert.kind.value}".strip()]
    if alert.text:
        lines.append(alert.text)
    where = f"[{alert.strategy}] " if alert.strategy else ""
    lines.append(f"{where}{when(alert.ts_ms)}")
    if repeated:
        lines.append("(re-sent after a notifier restart; you may have seen it already)")
    return fit("\n".join(lines), MAX_MESSAGE)


def _group_line(alert: Alert) -> str:
    icon = ICONS.get(alert.severity, "")
    named = alert.strategy and alert.title.startswith(alert.strategy)
    where = f"[{alert.strategy}] " if alert.strategy and not named else ""
    body = f"{alert.title}: {alert.text}" if alert.text else alert.title or alert.kind.value
    stamp = when(alert.ts_ms)[11:19] if alert.ts_ms > 0 else "?"
    return _clip(f"{icon} {stamp} {where}{body}", _PER_ALERT_IN_GROUP)


@dataclass(frozen=True)
class Outgoing:
    """One Telegram message and the alert stream ids it carries."""

    text: str
    alert_ids: tuple[str, ...]


def group_alerts(alerts: Sequence[Alert], repeated: Iterable[str] = ()) -> list[Outgoing]:
    """Alerts that fire together become as few messages as fit Telegram's size limit.

    Critical alerts are listed first inside a group so a halt is not buried under
    fifty trade notices.
    """
    if not alerts:
        return []
    again = set(repeated)
    if len(alerts) == 1:
        a = alerts[0]
        return [Outgoing(format_alert(a, a.id in again), (a.id,))]
    order = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}
    ranked = sorted(alerts, key=lambda a: order.get(a.severity, 3))  # stable: stream order kept
    chunks: list[list[Alert]] = [[]]
    size = 0
    for alert in ranked:
        line = len(_group_line(alert)) + 1
        if chunks[-1] and size + line > _BUDGET:
            chunks.append([])
            size = 0
        chunks[-1].append(alert)
        size += line
    out: list[Outgoing] = []
    for index, chunk in enumerate(chunks, start=1):
        counts = Counter(a.severity for a in chunk)
        parts = [f"{counts[s]} {s.value}" for s in (Severity.CRITICAL, Severity.WARNING,
                                                     Severity.INFO) if counts[s]]
        head = f"{len(chunk)} alerts ({', '.join(parts)})"
        if len(chunks) > 1:
            head += f" — part {index}/{len(chunks)}"
        lines = [head, *(_group_line(a) for a in chunk)]
        if any(a.id in again for a in chunk):
            lines.append("(some re-sent after a notifier restart; you may have seen them)")
        out.append(Outgoing(fit("\n".join(lines), MAX_MESSAGE), tuple(a.id for a in chunk)))
    return out


# -- command replies -----------------------------------------------------------------

HELP = """kubetrade bot — commands:
/status — emergency state, runners, positions
/positions — open positions
/pnl — profit and loss per strategy
/stop — halt trading and cancel pending orders (positions stay open)
/closeall — halt and close all positions at market (asks for confirmation)
/resume — resume trading after an emergency stop
/help — this list"""


def _decimal_text(value: Any, spec: str) -> str:
    """``value`` as a Decimal formatted with ``spec``; as given when it is no number."""
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    return format(d, spec)


def money(value: Any) -> str:
    return _decimal_text(value, ",.2f")


def signed(value: Any) -> str:
    return _decimal_text(value, "+,.2f")


def emergency_line(state: dict[str, Any]) -> str:
    action = str(state.get("action") or EmergencyAction.NONE)
    if action == EmergencyAction.NONE:
        if state.get("since_ms"):
            return f"Emergency: none (trading allowed; last change by {state.get('by')} " \
                   f"at {when(int(state['since_ms']))})"
        return "Emergency: none (trading allowed)"
    return (
        f"Emergency: {action.upper()} since {when(int(state.get('since_ms') or 0))} "
        f"by {state.get('by') or '?'}" + (f" — {state['reason']}" if state.get("reason") else "")
    )


def position_lines(positions: dict[str, list[dict[str, Any]]]) -> list[str]:
    lines = []
    for strategy in sorted(positions):
        for p in positions[strategy]:
            lines.append(
                f"[{strategy}] {p.get('symbol', '?')} qty {p.get('quantity', '?')} "
                f"@ {money(p.get('average_price', '?'))}"
                + (f" stop {money(p['stop_price'])}" if p.get("stop_price") else "")
            )
    return lines


def runner_line(name: str, summary: dict[str, str], positions: int, now_ms: int) -> str:
    """/status's line of one runner: its phase as of ``now_ms`` (``Stale`` once it has
    not been heard of for 60 s: dead, frozen or stopped, whatever it last wrote),
    equity, P&L, open positions (the summary's count, else ``positions``) and why it
    is halted."""
    halted = f", halted: {summary['halted_reason']}" if summary.get("halted_reason") else ""
    return (f"[{name}] {shown_phase(summary, now_ms) or '?'}, equity "
            f"{money(summary.get('equity', '?'))}, P&L {signed(summary.get('pnl', '0'))}, "
            f"open positions {summary.get('open_positions', positions)}{halted}")


def pnl_lines(summaries: dict[str, dict[str, str]]) -> list[str]:
    """One line per strategy, then (for several) the total: P&L summed, and its return
    on the capital every strategy started with (each counts from its own start with its
    own capital, so adding a strategy is not profit; the dashboard's time-weighted
    return is the figure that also weighs *when* each one started)."""
    lines = []
    total = Decimal(0)
    for name in sorted(summaries):
        s = summaries[name]
        try:
            total += Decimal(s.get("pnl") or "0")
        except InvalidOperation:
            pass
        lines.append(
            f"[{name}] P&L {signed(s.get('pnl', '0'))}, equity {money(s.get('equity', '?'))}, "
            f"trades {s.get('trades', '0')}, win rate {s.get('win_rate', '?')}"
        )
    if len(summaries) > 1:
        capital = _capital(summaries)
        on = (f" on capital {money(capital)} ({total / capital * 100:+.2f} %)"
              if capital else "")
        lines.append(f"Total P&L {signed(total)}{on}")
    return lines


def twin_line(summary: dict[str, str]) -> str | None:
    """A live strategy against its paper twin (issue 20), for ``/status``: the twin's
    P&L, the divergence (percent of starting equity) and the size-ramp step; None for
    a strategy without a twin."""
    divergence = summary.get("twin_divergence_pct")
    if not divergence:
        return None
    size = summary.get("size_pct") or "100"
    return (f"  paper twin P&L {signed(summary.get('twin_pnl', '0'))} "
            f"(live {signed(summary.get('pnl', '0'))}), divergence {divergence} %, "
            f"size {size} %")


def _capital(summaries: dict[str, dict[str, str]]) -> Decimal | None:
    """Sum of every strategy's starting capital; None when one is unknown or 0."""
    try:
        capital = sum((Decimal(s["starting_cash"]) for s in summaries.values()), Decimal(0))
    except (KeyError, InvalidOperation):
        return None
    return capital if capital > 0 else None
