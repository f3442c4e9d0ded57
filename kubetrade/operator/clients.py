"""What every handler shares: the operator's settings, its Kubernetes and Redis clients,
the Redis key names and the clock -- handed to handlers through Kopf's ``memo``.

``run_operator`` builds one :class:`Clients` (the clients need the event loop's thread)
and passes ``kopf.Memo({MEMO_KEY: clients})`` to ``kopf.operator``; Kopf gives every
resource a shallow copy of that memo, so all handlers reach the same clients with
``clients_of(memo)``. The Redis reads and writes of the operator are methods here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.operator.backoff import Backoff
from kubetrade.operator.kube import Kube
from kubetrade.operator.settings import OperatorSettings
from kubetrade.state import reports, runner_view
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.client import RedisClient, RedisError
from kubetrade.state.emergency import publish_emergency
from kubetrade.state.keys import Keys
from kubetrade.state.schema import EmergencyState

log = logging.getLogger("kubetrade.operator")

ACTOR = "operator"
MEMO_KEY = "kubetrade"

T = TypeVar("T")


@dataclass
class Clients:
    """The operator's clients; ``redis`` is None when REDIS_URL is not set."""

    settings: OperatorSettings
    kube: Kube
    redis: RedisClient | None
    keys: Keys
    clock: Clock = field(default_factory=SystemClock)
    #: the kubeconfig the operator logs in with (``--kubeconfig``); None: in-cluster
    #: service account or the default kubeconfig
    kubeconfig: str | None = None
    #: failing objects, retried with backoff (see ``handlers.support.guarded``)
    backoff: Backoff = field(default_factory=Backoff)

    async def close(self) -> None:
        """Close the Redis connection pool and the Kubernetes client."""
        if self.redis is not None:
            await self.redis.aclose()
        self.kube.close()

    async def audit(self, action: str, strategy: str = "", **detail: Any) -> None:
        """Append to the audit stream; a Redis failure is logged, never raised."""
        if self.redis is None:
            return
        try:
            await write_audit(
                self.redis,
                self.keys,
                AuditEntry(self.clock.now_ms(), ACTOR, action, strategy, detail),
            )
        except RedisError as exc:
            log.warning("audit not written (%s): %s %s", exc, action, strategy)

    async def open_orders(self, strategy: str) -> list[str]:
        """Client ids of the runner's orders that are not terminal (from its Redis state),
        sorted. Raises RedisError."""
        if self.redis is None:
            return []
        return await runner_view.open_order_ids(self.redis, self.keys, strategy)

    async def positions(self, strategy: str) -> list[str]:
        """Symbols of the runner's open positions, sorted. Raises RedisError."""
        if self.redis is None:
            return []
        return await runner_view.position_symbols(self.redis, self.keys, strategy)

    async def summary(self, strategy: str) -> dict[str, str]:
        """The runner's summary hash; {} when there is none or Redis is unreachable."""
        if self.redis is None:
            return {}
        try:
            return await runner_view.summary_fields(self.redis, self.keys, strategy)
        except RedisError:
            return {}

    async def preflight_report(self, strategy: str) -> dict[str, Any] | None:
        """The strategy's latest pre-flight report; None when there is none or Redis is
        unreachable."""
        if self.redis is None:
            return None
        try:
            return await reports.read_strategy_preflight(self.redis, self.keys, strategy)
        except RedisError:
            return None

    async def emergency(self) -> dict[str, str]:
        """The emergency hash in force (action, since_ms, by, reason). Raises RedisError."""
        if self.redis is None:
            return {}
        return await runner_view.emergency_fields(self.redis, self.keys)

    async def emergency_acks(self) -> dict[str, str]:
        """Runner -> JSON acknowledgement of the emergency action. Raises RedisError."""
        if self.redis is None:
            return {}
        return await runner_view.emergency_ack_texts(self.redis, self.keys)

    async def forget_acks(self, strategy: str) -> None:
        """Remove ``strategy``'s emergency acknowledgement (the Strategy is deleted: a
        later Strategy of the same name must ack for itself). Raises RedisError."""
        if self.redis is not None:
            await runner_view.forget_emergency_ack(self.redis, self.keys, strategy)

    async def publish_emergency(self, message: Mapping[str, Any]) -> None:
        """Store ``message`` (the fields of an :class:`EmergencyState`) as the emergency
        hash and publish it to the runners, in one transaction. Raises RedisError."""
        if self.redis is None:
            return
        state = EmergencyState.from_hash({k: str(v) for k, v in message.items()})
        await publish_emergency(self.redis, self.keys, state)


def memo_of(clients: Clients) -> kopf.Memo:
    """The operator memo to pass to ``kopf.operator(memo=...)``."""
    return kopf.Memo({MEMO_KEY: clients})


def clients_of(memo: kopf.Memo) -> Clients:
    """The clients in a handler's ``memo``; RuntimeError when the operator was started
    without them (not through ``run_operator``)."""
    value = memo.get(MEMO_KEY)
    if not isinstance(value, Clients):
        raise RuntimeError("the operator memo holds no Clients; start it with run_operator")
    return value


async def or_default(work: Awaitable[T], default: T) -> T:
    """``await work``, or ``default`` when Redis fails (logged)."""
    try:
        return await work
    except RedisError as exc:
        log.warning("redis unavailable: %s", exc)
        return default
