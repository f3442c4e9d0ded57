"""The namespace's kill switch as a value: the one spelling of the emergency actions.

``stop`` halts every runner and cancels its open orders; ``close-all`` also sells
every position at market; ``none`` lets them trade again. The values are the contract
users type (``kubectl patch emergency default ... {"spec":{"action":"close-all"}}``,
``POST /api/emergency/close-all``, Telegram ``/closeall``), so they never change.
"""

from __future__ import annotations

from enum import StrEnum

REDIS_WAIT_S = 1.0
"""Seconds a kill-switch request waits on Redis (a write, the revocation check, the
acknowledgements shown) before it answers without it: a Redis that hangs must not hold
back a stop whose record of truth is elsewhere (the Emergency resource in a cluster,
the runners' memory in ``kubetrade local``)."""


class EmergencyAction(StrEnum):
    """An emergency action (a ``str``: compares equal to its value)."""

    NONE = "none"
    STOP = "stop"
    CLOSE_ALL = "close-all"

    @property
    def halts(self) -> bool:
        """Whether runners are halted while this action is in force."""
        return self is not EmergencyAction.NONE

    @classmethod
    def parse(cls, value: object) -> EmergencyAction | None:
        """The action spelt ``value``, or None for anything else (None, "", "pause")."""
        try:
            return cls(str(value))
        except ValueError:
            return None


#: Every action's value, mildest first (the order severity ranks them in).
EMERGENCY_ACTIONS: tuple[str, ...] = tuple(a.value for a in EmergencyAction)

#: The actions that halt runners.
HALTING_ACTIONS: tuple[str, ...] = (EmergencyAction.STOP.value, EmergencyAction.CLOSE_ALL.value)


__all__ = ["EMERGENCY_ACTIONS", "HALTING_ACTIONS", "REDIS_WAIT_S", "EmergencyAction"]
