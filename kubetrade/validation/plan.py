"""What a validation runs: the plan (strategy, risk limits, criteria, replay or forward),
and the loading of its parts from flags' values and files.

Pure resolution, no trading: the engine and paper broker a run trades with are built
here exactly as a paper runner builds them, so replay, forward and live share them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from kubetrade.domain.algorithms import create_algorithm
from kubetrade.domain.engine import TradingEngine
from kubetrade.domain.gonogo import Criteria
from kubetrade.domain.models import ClosedTrade
from kubetrade.domain.risk import MARKET_PRICE_MARGIN
from kubetrade.exchange.paper import (
    DEFAULT_FEE_RATE,
    DEFAULT_PARTICIPATION,
    DEFAULT_SLIPPAGE_BPS,
    PaperBroker,
)
from kubetrade.exchange.replay import bundled_candles
from kubetrade.marketdata.timeframes import timeframe_ms
from kubetrade.resources import RiskPolicy, load_manifests


@dataclass(frozen=True)
class Friction:
    """What trading costs in a run: the paper broker's fee and slippage and how much of a
    candle's volume a resting order may take, plus the engine's sizing margin.

    ``fee_rate``: fraction of each fill's value charged in the quote asset, both sides
    (0.001 = 0.1%, Binance's spot taker rate without BNB). ``slippage_bps``: market
    orders fill this many basis points worse than the last price, both sides (buys
    higher, sells lower). ``participation``: fraction of a candle's volume a resting
    limit order may fill per candle. ``sizing_margin``: entries are sized so cash pays
    fees at a price this fraction above the decision price (fixed in the engine; shown
    so a reader knows why a position is a little smaller than its percentage).
    """

    fee_rate: Decimal = DEFAULT_FEE_RATE
    slippage_bps: Decimal = DEFAULT_SLIPPAGE_BPS
    participation: Decimal = DEFAULT_PARTICIPATION
    sizing_margin: Decimal = MARKET_PRICE_MARGIN

    def __post_init__(self) -> None:
        if not (0 <= self.fee_rate < 1):
            raise ValueError(f"fee rate: {self.fee_rate} must be in [0, 1) (0.001 = 0.1%)")
        if not (0 <= self.slippage_bps < 10_000):
            raise ValueError(f"slippage: {self.slippage_bps} bps must be in [0, 10000)")
        if not (0 < self.participation <= 1):
            raise ValueError(f"participation: {self.participation} must be in (0, 1]")

    def to_dict(self) -> dict[str, str]:
        """The report's ``run.friction``: exact decimal strings."""
        return {"fee_rate": str(self.fee_rate), "slippage_bps": str(self.slippage_bps),
                "participation": str(self.participation),
                "sizing_margin": str(self.sizing_margin)}


@dataclass
class ValidationPlan:
    """Everything a run needs, resolved from flags, files or the cluster."""

    strategy: Any
    """kubetrade.resources.Strategy."""
    limits: Any
    """kubetrade.domain.risk.RiskLimits."""
    criteria: Criteria
    mode: str
    """``replay`` or ``forward``."""
    replay_path: Path | None = None
    symbol: str | None = None
    """Replay: which of the strategy's symbols the file holds (default the first)."""
    duration_s: int = 48 * 3600
    namespace: str = ""
    validation_run: str = ""
    source: str = ""
    load_options: Any = None
    """kubetrade.marketdata.LoadOptions of the replay (--time-unit, --resample, ...)."""
    replay_store: Any = None
    """kubetrade.marketdata.replay_input.StoreRange for ``--replay store``."""
    data_dir: Path | None = None
    """The candle store, whose markets/ holds a refreshed filters snapshot (--datadir)."""
    friction: Friction = Friction()
    """Fees, slippage and fill participation of the paper broker (--fee-rate, ...)."""
    confidence: Decimal | None = None
    """--confidence: Sharpe and win rate judged only outside their confidence interval."""
    sweep: Any = None
    """kubetrade.validation.sweep.SweepSpec of ``--sweep`` (walk-forward), or None."""
    equity_csv: Path | None = None
    """--equity-csv: where the full-resolution equity curve goes (the report's is bounded)."""


@dataclass
class RunOutcome:
    """What a run traded: round trips, the equity curve (ms, quote currency), how many
    candles it consumed over which range (ms), and what was left open or refused."""

    trades: list[ClosedTrade]
    equity_curve: list[tuple[int, Decimal]]
    candles: int
    data_start_ms: int | None
    data_end_ms: int | None
    open_positions: int
    rejected_orders: int
    data_quality: dict[str, Any] | None = None
    """The candle loader's report (gaps, duplicates, sorting, resampling) of a replay."""
    positions: list[dict[str, Any]] | None = None
    """Positions left open at the end (:func:`open_positions`)."""
    prices: list[tuple[int, float]] | None = None
    """A replay's close prices (ms, price), at most a few thousand, for the plots."""
    first_close: Decimal | None = None
    last_close: Decimal | None = None
    """A replay's first and last close (the buy-and-hold benchmark)."""


def open_positions(engine: TradingEngine) -> list[dict[str, Any]]:
    """Each position left open: quantity, average price, last mark, entry fees paid and
    the unrealised P&L at the mark (net of the entry fees, before any exit fee)."""
    out = []
    marks = engine.marks
    for sym, pos in sorted(engine.positions.items()):
        mark = marks.get(sym, pos.average_price)
        out.append({"symbol": sym, "quantity": str(pos.quantity),
                    "average_price": str(pos.average_price), "mark": str(mark),
                    "opened_ms": pos.opened_ms, "entry_fees": str(pos.fees),
                    "unrealised_pnl": str(pos.quantity * (mark - pos.average_price) - pos.fees)})
    return out


def parse_duration(text: str) -> int:
    """``48h``, ``90m``, ``1d12h``, ``30s`` -> seconds (the ValidationRun's pattern)."""
    value = text.strip()
    parts = re.findall(r"(\d+)([smhd])", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"duration: {text!r} is not like 48h, 90m, 1d12h or 30s")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    seconds = sum(int(n) * unit[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration: {text!r} must be longer than 0")
    return seconds


def limits_from_file(path: str, ref: str | None) -> Any | None:
    """The RiskLimits of the RiskPolicy named ``ref`` in a YAML file (None when the file
    holds no RiskPolicy: the defaults apply); without ``ref`` the file must hold exactly
    one. ValueError otherwise: a file holding policies but not ``ref`` is a misspelt
    riskPolicyRef, which must not trade with the defaults."""
    policies = [r for r in load_manifests(path) if isinstance(r, RiskPolicy)]
    if ref is not None:
        policies = [p for p in policies if p.metadata.name == ref] or check_policy_ref(
            ref, [p.metadata.name for p in policies], path)
    elif len(policies) != 1:
        raise ValueError(f"{path}: expected exactly one RiskPolicy, found {len(policies)}")
    return policies[0].spec.to_limits() if policies else None


def check_policy_ref(ref: str, names: list[str], where: str) -> list[Any]:
    """[] when ``where`` holds no RiskPolicy at all (the defaults apply); ValueError when
    it holds others than ``ref``, naming them (and the nearest)."""
    if not names:
        return []
    near = get_close_matches(ref, names, n=1)
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    raise ValueError(f"{where}: spec.riskPolicyRef {ref!r} is not a RiskPolicy there{hint}; "
                     f"it holds {', '.join(sorted(names))}")


def replay_path_for(replay: str, symbol: str | None, strategy: Any) -> Path:
    """The candle file of ``--replay`` (``bundled``: the shipped candles of the symbol
    and the strategy's timeframe). ValueError when there is no such file, or when
    ``symbol`` is not one of the strategy's symbols."""
    if replay == "bundled":
        chosen = symbol or strategy.spec.symbols[0]
        found = bundled_candles(chosen, strategy.spec.timeframe)
        if found is None:
            raise ValueError(
                f"replay: no bundled candles for {chosen} {strategy.spec.timeframe}"
            )
        replay_path = found
    else:
        replay_path = Path(replay)
        if not replay_path.is_file():
            raise ValueError(f"replay: {replay} is not a file")
    if symbol and symbol not in strategy.spec.symbols:
        raise ValueError(f"symbol: {symbol} is not one of the strategy's symbols "
                         f"{strategy.spec.symbols}")
    return replay_path


KEPT_BY_REPLAY = 100
"""Orders and fills a validation's paper broker remembers (nothing reads older ones)."""


def engine_and_broker(
    plan: ValidationPlan, markets: dict[str, Any]
) -> tuple[TradingEngine, PaperBroker]:
    """A fresh engine and paper broker, built exactly as a paper runner builds them."""
    spec = plan.strategy.spec
    quote = next(iter(markets.values())).quote
    cash = Decimal(spec.initial_capital)
    friction = plan.friction
    engine = TradingEngine(
        plan.strategy.metadata.name,
        create_algorithm(spec.algorithm, spec.parameters, rules=spec.rules),
        plan.limits,
        markets,
        cash,
        quote,
        fee_rate=friction.fee_rate,
        timeframe_ms=timeframe_ms(spec.timeframe),
    )
    # a replay asks the broker for no old order or fill: it keeps a few (the runner's
    # paper broker keeps 100,000 of each); on 1M candles that is ~20 MiB less
    broker = PaperBroker(markets, {quote: cash}, fee_rate=friction.fee_rate,
                         slippage_bps=friction.slippage_bps,
                         participation=friction.participation,
                         max_fills_kept=KEPT_BY_REPLAY, max_orders_kept=KEPT_BY_REPLAY)
    return engine, broker
