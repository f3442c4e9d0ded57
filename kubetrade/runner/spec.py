"""What a runner is made of: the strategy it trades (``RunnerSpec``), how it runs
(``RunnerOptions``) and the parts it is built from (``RunnerParts``).

``kubetrade.runner.assembly`` makes the parts from a manifest and the environment;
``Runner.restore(parts)`` turns them into a runner whose state is restored from Redis.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from kubetrade.domain.clock import Clock
from kubetrade.domain.risk import RiskLimits
from kubetrade.exchange.base import ExchangeClient
from kubetrade.exchange.paper import PaperExchange
from kubetrade.resources import Strategy
from kubetrade.runner.market import MarketSource
from kubetrade.runner.metrics import RunnerMetrics
from kubetrade.state.client import Redis
from kubetrade.state.keys import Keys


@dataclass
class RunnerSpec:
    """What the runner needs from the Strategy manifest."""

    name: str
    algorithm: str
    parameters: dict[str, Any]
    symbols: list[str]
    timeframe: str = "1m"
    mode: str = "paper"
    initial_capital: Decimal = Decimal(10000)
    enabled: bool = True
    risk_policy_ref: str = "default"
    testnet: bool = True
    #: The Strategy's namespace when the runner trades from a cluster (None otherwise).
    namespace: str | None = None
    #: The exchange account (its ``credentialsSecret``): live strategies on one account
    #: share its books (``runner/account.py``); None: "default".
    account: str | None = None
    #: Live: the budget as this percentage of the account's quote balance at the first
    #: start, instead of ``initial_capital`` (``runner/account.py`` starting_capital).
    capital_pct: Decimal | None = None

    @property
    def account_id(self) -> str:
        """The account's key in Redis: ``<namespace>/<secret>`` in a cluster (a Secret
        is a namespace's), the secret's name otherwise, "default" without one."""
        name = self.account or "default"
        return f"{self.namespace}/{name}" if self.namespace else name

    @property
    def quote_asset(self) -> str:
        """The quote asset of the first symbol (``USDT`` of ``BTC/USDT``)."""
        return self.symbols[0].split("/")[1] if self.symbols else "USDT"

    @property
    def order_id_source(self) -> str:
        """What client order ids are derived from. Strategy names are unique only within
        a namespace, and two namespaces may trade one exchange account: with the bare
        name their ids would collide, the exchange would refuse one runner's order as a
        duplicate and that runner would adopt the other's order and fills."""
        return f"{self.namespace}/{self.name}" if self.namespace else self.name

    @classmethod
    def from_manifest(
        cls, manifest: dict[str, Any], namespace: str | None = None
    ) -> RunnerSpec:
        """Validate with the Strategy resource model, so the runner refuses what the API
        server would refuse, with the same messages (pydantic ``ValidationError``)."""
        model = Strategy.model_validate(manifest)
        spec = model.spec
        return cls(
            namespace=namespace,
            name=model.metadata.name,
            algorithm=spec.algorithm,
            parameters=spec.validated_parameters(),
            symbols=list(spec.symbols),
            timeframe=spec.timeframe,
            mode=spec.mode,
            initial_capital=Decimal(str(spec.initial_capital)),
            enabled=spec.enabled,
            risk_policy_ref=spec.risk_policy_ref,
            testnet=spec.exchange.testnet,
            account=spec.exchange.credentials_secret,
            capital_pct=(None if spec.capital_pct_of_account is None
                         else Decimal(str(spec.capital_pct_of_account))),
        )


def limits_from_manifest(manifest: dict[str, Any] | None) -> RiskLimits:
    """The risk limits of a RiskPolicy manifest (defaults when None); raises pydantic's
    ``ValidationError`` on a bad spec."""
    return RiskLimits.model_validate((manifest or {}).get("spec") or {})


@dataclass
class RunnerOptions:
    """How the runner runs (not what it trades)."""

    reconcile_interval_s: float = 300.0
    #: In paper mode the broker state is persisted with every commit.
    paper: bool = True
    #: Stop after this many candles (tests and benchmarks); None runs forever.
    max_candles: int | None = None


@dataclass
class RunnerParts:
    """Everything a runner is built from; nothing is read or restored yet.

    ``clock`` is wall time (audit, summary, acks); ``market_clock`` the market's time
    that orders and fills carry (the candles' time in a replay; ``clock`` when None).
    ``options`` defaults to ``RunnerOptions(paper=paper is not None)``; ``metrics`` to
    the process-wide Prometheus metrics.
    """

    spec: RunnerSpec
    redis: Redis
    keys: Keys
    exchange: ExchangeClient
    market: MarketSource
    clock: Clock
    limits: RiskLimits
    paper: PaperExchange | None = None
    options: RunnerOptions | None = None
    metrics: RunnerMetrics | None = None
    market_clock: Clock | None = None

    @property
    def name(self) -> str:
        """The strategy's name."""
        return self.spec.name
