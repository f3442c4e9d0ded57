"""What every handler shares: the operator's settings, its Kubernetes and Redis clients,
the Redis key names and the clock -- handed to handlers through Kopf's ``memo``.

``run_operator`` builds one :class:`Clients` (the clients need the event loop's thread)
and passes ``kopf.Memo({MEMO_KEY: clients})`` to ``kopf.operator``; Kopf gives every
resource a shallow copy of that memo, so all handlers reach the same clients with
``clients_of(memo)``. The Redis reads and writes of the operator are methods here.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import kopf
from redis.asyncio import Redis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.domain.models import OrderStatus
from kubetrade.operator.kube import Kube
from kubetrade.operator.settings import OperatorSettings
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.keys import Keys

log = logging.getLogger("kubetrade.operator")

ACTOR = "operator"
MEMO_KEY = "kubetrade"
_TERMINAL = {s.value for s in OrderStatus if s.is_terminal}

T = TypeVar("T")


@dataclass
class Clients:
    """The operator's clients; ``redis`` is None when REDIS_URL is not set."""

    settings: OperatorSettings
    kube: Kube
    redis: Redis | None
    keys: Keys
    clock: Clock = field(default_factory=SystemClock)
    #: the kubeconfig the operator logs in with (``--kubeconfig``); None: in-cluster
    #: service account or the default kubeconfig
    kubeconfig: str | None = None

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

    async def _hash(self, key: str) -> dict[str, str]:
        if self.redis is None:
            return {}
        raw: Mapping[Any, Any] = await self.redis.hgetall(key)
        return {str(k): str(v) for k, v in raw.items()}

    async def open_orders(self, strategy: str) -> list[str]:
        """Client ids of the runner's orders that are not terminal (from its Redis state),
        sorted. Raises RedisError."""
        open_ids = []
        for cid, text in (await self._hash(self.keys.orders(strategy))).items():
            try:
                status = json.loads(text).get("status")
            except (TypeError, ValueError):
                continue
            if status not in _TERMINAL:
                open_ids.append(cid)
        return sorted(open_ids)

    async def positions(self, strategy: str) -> list[str]:
        """Symbols of the runner's open positions, sorted. Raises RedisError."""
        return sorted(await self._hash(self.keys.positions(strategy)))

    async def summary(self, strategy: str) -> dict[str, str]:
        """The runner's summary hash; {} when there is none or Redis is unreachable."""
        try:
            return await self._hash(self.keys.summary(strategy))
        except RedisError:
            return {}

    async def emergency(self) -> dict[str, str]:
        """The emergency hash in force (action, since_ms, by, reason). Raises RedisError."""
        return await self._hash(self.keys.emergency)

    async def emergency_acks(self) -> dict[str, str]:
        """Runner -> JSON acknowledgement of the emergency action. Raises RedisError."""
        return await self._hash(self.keys.emergency_acks)

    async def forget_acks(self, strategy: str) -> None:
        """Remove ``strategy``'s emergency acknowledgement (the Strategy is deleted: a
        later Strategy of the same name must ack for itself). Raises RedisError."""
        if self.redis is not None:
            await self.redis.hdel(self.keys.emergency_acks, strategy)

    async def publish_emergency(self, message: Mapping[str, Any]) -> None:
        """Store ``message`` as the emergency hash and publish it to the runners, in one
        transaction. Raises RedisError."""
        if self.redis is None:
            return
        fields: dict[FieldT, EncodableT] = {k: str(v) for k, v in message.items()}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(self.keys.emergency, mapping=fields)
            pipe.publish(self.keys.emergency_channel, json.dumps(message))
            await pipe.execute()


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
