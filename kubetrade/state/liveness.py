"""Whether a runner is alive, read from its summary: one rule for the operator (phase
``Stale``, ``Ready=False``), the API, the dashboard and the Telegram bot.

A runner writes its summary's ``heartbeat_ms`` every 10 s while its trading loop runs
(and ``updated_ms`` with every state change). A summary whose newest word is older
than :data:`HEARTBEAT_MAX_AGE_MS` is a runner that died, froze or was stopped: its last
``phase`` (``Running``, ``Halted``) is history, not the present, and is shown as
``Stale``.
"""

from __future__ import annotations

from collections.abc import Mapping

HEARTBEAT_MAX_AGE_MS = 60_000
"""Six missed heartbeats (the operator's default ``KUBETRADE_HEARTBEAT_MAX_AGE``)."""
STALE = "Stale"
REMOVED = "Removed"
"""The phase of a strategy whose Strategy is gone (``kubetrade local`` started without
its file): no runner on purpose, so never ``Stale``; its books stay for reading."""


def heard_ms(summary: Mapping[str, str]) -> int:
    """When the runner was last heard of: the later of its summary's ``updated_ms`` and
    ``heartbeat_ms`` (epoch ms); 0 when it never said."""
    best = 0
    for key in ("updated_ms", "heartbeat_ms"):
        try:
            best = max(best, int(float(summary.get(key) or 0)))
        except ValueError:
            continue
    return best


def shown_phase(summary: Mapping[str, str], now_ms: int,
                max_age_ms: int = HEARTBEAT_MAX_AGE_MS) -> str | None:
    """The runner's phase as it is now: its summary's ``phase``, or ``Stale`` when the
    runner has not been heard of for more than ``max_age_ms``; None without a phase."""
    phase = summary.get("phase") or None
    if phase == REMOVED:
        return phase
    heard = heard_ms(summary)
    if phase is not None and heard and now_ms - heard > max_age_ms:
        return STALE
    return phase


__all__ = ["HEARTBEAT_MAX_AGE_MS", "REMOVED", "STALE", "heard_ms", "shown_phase"]
