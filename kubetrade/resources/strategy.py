"""The Strategy kind: one trading algorithm on some symbols, paper or live."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Literal, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationError,
    field_validator,
    model_validator,
)

from kubetrade.domain.rules.catalogue import KINDS
from kubetrade.domain.rules.spec import NAME_PATTERN, RulesSpec
from kubetrade.domain.timeframes import TradingTimeframe
from kubetrade.resources.algorithms import algorithms, installed_algorithms
from kubetrade.resources.common import DNS_LABEL, CRModel, CRStatus, Num, Resource

Timeframe = TradingTimeframe
SYMBOL_PATTERN = r"^[A-Z0-9]{2,12}/[A-Z0-9]{2,12}$"
#: Strategy names end up in Deployment, pod and label names; keep room for suffixes.
MAX_STRATEGY_NAME = 45
#: An algorithm name is an entry point name; bounded so the CRD's CEL cost is bounded.
MAX_ALGORITHM_NAME = 63


def check_pairs(field: str, symbols: list[str]) -> None:
    """ValueError naming ``field[i]`` for the first symbol not spelled BASE/QUOTE."""
    for i, symbol in enumerate(symbols):
        if not re.fullmatch(SYMBOL_PATTERN, symbol):
            raise ValueError(f"{field}[{i}] {symbol!r} is not BASE/QUOTE, e.g. BTC/USDT")


#: Why a Strategy trades pairs of one quote asset: the runner keeps its books (cash,
#: sizing, risk limits, P&L) in one quote asset, its first symbol's; an ETH/BTC entry
#: sized in USDT terms would be 1,000 BTC of exposure from 10,000 USDT. One Strategy per
#: quote asset is the simple, checkable rule (books per quote asset would need prices
#: between quote assets in every risk check).
ONE_QUOTE_MESSAGE = (
    "spec.symbols must all have the same quote asset (the runner keeps its books in one "
    "quote asset): use one Strategy per quote asset"
)


def _same_keys_as_the_crd(algorithm: str, model: Any, parameters: dict[str, Any]) -> None:
    """What the CRD's CEL refuses, refused offline too: a key the algorithm does not take
    (by its CR spelling), a value that is not a number. Raises ValueError."""
    fields = getattr(model, "model_fields", {})
    names = [f.alias or n for n, f in fields.items()]
    for key, value in parameters.items():
        if key not in names:
            takes = f"only {', '.join(names)}" if names else "no parameters"
            raise ValueError(
                f"spec.parameters.{key}: not a parameter of {algorithm} ({algorithm} takes "
                f"{takes})"
            )
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise ValueError(f"spec.parameters.{key}: Invalid value: must be a number")


def _msg(text: str) -> str:
    return text.removeprefix("Value error, ")


class _AnyParams(BaseModel):
    model_config = ConfigDict(extra="allow")


#: What the API server can check of spec.rules (the rest needs the compiler: the operator
#: sets the Strategy's condition to Invalid with the expression's line and column).
RULES_CRD_CHECKS: list[JsonValue] = [
    {
        "rule": f"!has(self.indicators) || self.indicators.all(n, n.matches('{NAME_PATTERN}'))",
        "message": "spec.rules.indicators: names are lower case letters, digits and "
        "underscores, starting with a letter",
        "fieldPath": ".indicators",
    },
    {
        "rule": "!has(self.indicators) || self.indicators.all(n, self.indicators[n].all(k, "
        f"k in {list(KINDS)!r}))",
        "message": f"spec.rules.indicators: each kind is one of {', '.join(KINDS)}",
        "fieldPath": ".indicators",
    },
]


class ExchangeSpec(CRModel):
    """Where orders go. Keys are never in the spec: only the name of a Secret holding them."""

    name: Literal["binance"] = Field(default="binance", description="Exchange; binance (spot).")
    testnet: bool = Field(
        default=True,
        strict=True,
        description="Use the exchange's testnet (no real money). Ignored in paper mode "
        "except for market data.",
    )
    credentials_secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=253,
        pattern=DNS_LABEL,
        description="Name of a Secret in the same namespace with keys apiKey and secretKey; "
        "mounted read-only into the runner. Required in live mode.",
    )


class StrategySpec(CRModel):
    """What the trader wants to run."""

    algorithm: str = Field(
        min_length=1,
        max_length=MAX_ALGORITHM_NAME,
        description="Trading algorithm: sma-crossover, rsi-mean-reversion, bollinger-breakout "
        "or rules (conditions in spec.rules); any other name is a plugin algorithm "
        "(docs/plugins.md), accepted in a cluster only with spec.image (an image that has "
        "it installed; its parameters are checked by the plugin when the runner starts); "
        "kubetrade local/validate also take plugins installed where they run.",
    )
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="Parameters of the algorithm (camelCase); absent ones take the "
        "algorithm's defaults. sma-crossover: fastPeriod, slowPeriod; rsi-mean-reversion: "
        "period, oversold, overbought; bollinger-breakout: period, stdDev.",
    )
    rules: RulesSpec | None = Field(
        default=None,
        description="For algorithm rules: named indicators and CEL entry/exit conditions "
        "over them, checked (syntax, names, types, warm-up) before anything runs. See "
        "docs/strategies.md.",
        json_schema_extra={"x-kubernetes-validations": RULES_CRD_CHECKS},
    )
    image: str | None = Field(
        default=None,
        min_length=1,
        max_length=512,
        description="Container image for the runner instead of kubetrade's, built FROM it "
        "with plugin algorithms installed (docs/plugins.md).",
    )
    symbols: list[str] = Field(
        min_length=1,
        max_length=20,
        description="Spot pairs to trade, as BASE/QUOTE, e.g. BTC/USDT.",
        json_schema_extra={
            "items": {"type": "string", "pattern": SYMBOL_PATTERN, "maxLength": 25}
        },
    )
    timeframe: Timeframe = Field(default="1m", description="Candle interval the algorithm sees.")
    mode: Literal["paper", "live"] = Field(
        default="paper",
        description="paper simulates fills on real market data; live sends real orders "
        "(needs a pre-flight PASS and a RiskPolicy with stop-loss and daily loss limit).",
    )
    exchange: ExchangeSpec = Field(
        default_factory=ExchangeSpec, description="Exchange and the Secret with its keys."
    )
    risk_policy_ref: str = Field(
        default="default",
        min_length=1,
        max_length=63,
        pattern=DNS_LABEL,
        description="Name of the RiskPolicy in this namespace whose limits apply.",
    )
    enabled: bool = Field(
        default=True,
        strict=True,
        description="false stops trading (runner scaled to 0) and keeps all state.",
    )
    initial_capital: Num = Field(
        default=Decimal(10000),
        gt=0,
        le=Decimal(1_000_000_000),
        description="Quote-asset cash the paper portfolio starts with.",
    )
    capital_pct_of_account: Num | None = Field(
        default=None,
        gt=0,
        le=100,
        description="Live: the strategy's budget as this percentage of the account's "
        "quote-asset balance (free + locked) when it first starts, instead of "
        "initialCapital. Checked against the account's free balance by the pre-flight "
        "(condition CapitalAllocated).",
    )
    close_positions_on_delete: bool = Field(
        default=False,
        strict=True,
        description="On delete, also sell open positions at market (open orders are "
        "always cancelled first).",
    )

    @field_validator("symbols")
    @classmethod
    def _symbols_well_formed(cls, value: list[str]) -> list[str]:
        check_pairs("symbols", value)
        if len(set(value)) != len(value):
            raise ValueError("symbols must not repeat a pair")
        quotes = sorted({symbol.split("/")[1] for symbol in value})
        if len(quotes) > 1:
            raise ValueError(ONE_QUOTE_MESSAGE + f" (got {', '.join(quotes)})")
        return value

    @model_validator(mode="after")
    def _check_algorithm_and_mode(self) -> Self:
        known = installed_algorithms()
        model = known.get(self.algorithm)
        if self.algorithm == "rules" and self.rules is None:
            raise ValueError("rules: required when algorithm is rules")
        if self.algorithm != "rules" and self.rules is not None:
            raise ValueError(f"rules: only for algorithm rules, not {self.algorithm}")
        if model is None and self.image is None:
            raise ValueError(
                f"algorithm {self.algorithm!r} is not one of {', '.join(sorted(known))} "
                "(a plugin algorithm needs spec.image or the plugin installed here)"
            )
        if self.algorithm in algorithms():
            _same_keys_as_the_crd(self.algorithm, model, self.parameters)
        try:
            if model is None:  # a plugin of spec.image: its runner validates the parameters
                model = _AnyParams
            model.model_validate(self.parameters)
        except ValidationError as exc:
            problems = "; ".join(
                f"parameters.{'.'.join(str(p) for p in err['loc'])}: {_msg(err['msg'])}"
                if err["loc"]
                else f"parameters: {_msg(err['msg'])}"
                for err in exc.errors()
            )
            raise ValueError(f"{self.algorithm}: {problems}") from None
        if self.mode == "live" and not self.exchange.credentials_secret:
            raise ValueError(
                "exchange.credentialsSecret is required in live mode (the Secret with the "
                "exchange keys)"
            )
        return self

    def validated_parameters(self) -> dict[str, Any]:
        """The parameters with the algorithm's defaults filled in (CR spelling): what
        ``create_algorithm(algorithm, parameters)`` builds the algorithm from. For
        ``rules`` they are ``{"rules": spec.rules}``, so every path that carries the
        parameters (runner spec, snapshots) carries the rules too."""
        if self.algorithm == "rules" and self.rules is not None:
            return {"rules": self.rules.model_dump(mode="json", by_alias=True)}
        model = installed_algorithms().get(self.algorithm, _AnyParams)
        return model.model_validate(self.parameters).model_dump(mode="json", by_alias=True)


class StrategyStatus(CRStatus):
    """What the operator and the runner report. P&L figures come from the runner's summary."""

    phase: str | None = Field(
        default=None,
        description="Pending, PreflightRunning, PreflightFailed, Starting, Running, Halted, "
        "Stale (the runner has not been heard of within the operator's heartbeat age, "
        "60 s by default), Disabled, Terminating or Failed.",
    )
    pnl: str | None = Field(
        default=None, description="Net realised + unrealised P&L in the quote asset."
    )
    equity: str | None = Field(default=None, description="Portfolio value in the quote asset.")
    trades: int | None = Field(default=None, ge=0, description="Closed round-trip trades.")
    win_rate: str | None = Field(
        default=None, description="Share of closed trades with positive P&L, e.g. 55.0%."
    )
    open_positions: int | None = Field(default=None, ge=0, description="Open positions.")
    halted_reason: str | None = Field(
        default=None, description="Why the runner is halted, when it is."
    )
    twin_divergence: str | None = Field(
        default=None,
        description="Live strategies: live equity against its paper twin's, the gap as "
        "percent of the starting equity, e.g. 0.42% (GET /api/live-vs-paper has the rest).",
    )
    size_step: str | None = Field(
        default=None,
        description="Live strategies with a size ramp (RiskPolicy sizeRampSteps): the "
        "percent of the full position size in force, e.g. 25%.",
    )
    deployment: str | None = Field(default=None, description="Name of the runner Deployment.")
    config_hash: str | None = Field(
        default=None, description="Hash of the pod configuration the runner was started with."
    )
    preflight: str | None = Field(
        default=None, description="Result of the latest pre-flight: PASS, WARN or FAIL."
    )
    preflight_passed_hash: str | None = Field(
        default=None,
        description="The configuration hash whose pre-flight passed: kept as long as "
        "the spec it checked, so an expired pre-flight Job never stops a live runner.",
    )
    disable_requested_ms: int | None = Field(
        default=None,
        ge=0,
        description="While disabling: when spec.enabled=false was first seen with orders "
        "still open (epoch ms); the pod is kept until they are cancelled or a timeout.",
    )
    summary_updated: str | None = Field(
        default=None, description="When the runner last wrote its summary (RFC 3339)."
    )


class Strategy(Resource):
    """A trading algorithm the operator runs as a runner Deployment."""

    kind: Literal["Strategy"] = Field(default="Strategy", description="Strategy")
    spec: StrategySpec
    status: StrategyStatus | None = None

    @model_validator(mode="after")
    def _name_fits(self) -> Self:
        if len(self.metadata.name) > MAX_STRATEGY_NAME:
            raise ValueError(
                f"metadata.name must be at most {MAX_STRATEGY_NAME} characters (it names "
                "the runner Deployment and its pods)"
            )
        return self
