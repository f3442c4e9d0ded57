"""Pre-flight's I/O: gathering the checks' inputs (exchange, environment, credentials,
clock) and publishing the result to Redis.

The checks themselves are pure (:mod:`kubetrade.domain.preflight`); here every answer of
the exchange, and every failure to get one, becomes an input of them, never a crash.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from kubetrade.domain.allocation import AllocationInputs
from kubetrade.domain.models import Balance, MarketInfo
from kubetrade.domain.preflight import (
    ApiKeyProbe,
    CheckStatus,
    KeyPermissions,
    PreflightInputs,
    PreflightReport,
    RateLimitConfig,
    client_throttle_enabled,
    run_checks,
)
from kubetrade.exchange.base import AuthenticationFailed, TransientError
from kubetrade.logs import redactor
from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.reports import write_preflight

DEFAULT_SECRETS_DIR = "/var/run/secrets/kubetrade/exchange"


@dataclass(frozen=True)
class Credentials:
    api_key: str
    secret: str

    def __repr__(self) -> str:  # never print the keys, even by accident
        return "Credentials(api_key=***, secret=***)"

    def __bool__(self) -> bool:
        return bool(self.api_key and self.secret)


def load_credentials(env: Mapping[str, str]) -> Credentials:
    """BINANCE_API_KEY/BINANCE_SECRET_KEY, else the Secret's files (apiKey, secretKey)
    in KUBETRADE_SECRETS_DIR, the way the operator mounts them into pods."""
    key = env.get("BINANCE_API_KEY", "").strip()
    secret = env.get("BINANCE_SECRET_KEY", "").strip()
    if key and secret:
        return Credentials(key, secret)
    directory = Path(env.get("KUBETRADE_SECRETS_DIR", DEFAULT_SECRETS_DIR))
    try:
        key = key or (directory / "apiKey").read_text(encoding="utf-8").strip()
        secret = secret or (directory / "secretKey").read_text(encoding="utf-8").strip()
    except OSError:
        pass
    return Credentials(key, secret)


def _safe(exc: BaseException) -> str:
    """An error for the report: its type and message, with any secret masked."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return str(redactor().redact_text(text))[:300]


async def _read_twice(fetch: Any) -> Any:
    """One retry for a transient failure of a read: the adapter re-syncs its clock
    offset after a -1021 and raises TransientError, and the runner (through
    ResilientExchange) would retry too, so the first attempt alone would misjudge
    a working key."""
    try:
        return await fetch()
    except TransientError:
        return await fetch()


async def probe_permissions(exchange: Any) -> KeyPermissions:
    """Binance's apiRestrictions through the exchange adapter, when it can ask."""
    fetch = getattr(exchange, "fetch_api_restrictions", None)
    if fetch is None:
        return KeyPermissions(None, error="the exchange adapter cannot read key permissions")
    try:
        raw = await _read_twice(fetch)
    except Exception as exc:  # any failure only degrades this check to WARN
        return KeyPermissions(None, error=_safe(exc))
    if not isinstance(raw, Mapping):
        return KeyPermissions(None, error="unexpected apiRestrictions answer")
    withdrawals = raw.get("enableWithdrawals")
    spot = raw.get("enableSpotAndMarginTrading")
    return KeyPermissions(
        enable_withdrawals=None if withdrawals is None else bool(withdrawals),
        enable_spot_trading=None if spot is None else bool(spot),
        raw=dict(raw),
    )


@dataclass(frozen=True)
class _KeyAnswers:
    """What the authenticated calls said: the key probe, balances and permissions."""

    probe: ApiKeyProbe
    balances: Mapping[str, Balance] | None
    balances_error: str
    permissions: KeyPermissions | None


async def _load_markets(exchange: Any) -> tuple[Mapping[str, MarketInfo] | None, str]:
    """(the exchange's markets or None, why not)."""
    try:
        return await exchange.load_markets(), ""
    except Exception as exc:
        return None, _safe(exc)


async def _ask_with_key(exchange: Any, credentials: Credentials) -> _KeyAnswers:
    """Balances through the key (which proves it), then its permissions when it works."""
    if not credentials:
        return _KeyAnswers(ApiKeyProbe(False, False), None, "no API key",
                           KeyPermissions(None, error="no API key"))
    balances: Mapping[str, Balance] | None = None
    balances_error = ""
    try:
        balances = await _read_twice(exchange.fetch_balances)
        probe = ApiKeyProbe(True, True)
    except AuthenticationFailed as exc:
        balances_error = "the API key was refused"
        probe = ApiKeyProbe(True, False, _safe(exc))
    except Exception as exc:
        balances_error = _safe(exc)
        probe = ApiKeyProbe(True, False, _safe(exc), unanswered=True)
    permissions: KeyPermissions | None = (
        await probe_permissions(exchange) if probe.ok else
        KeyPermissions(None, error="the exchange did not answer" if probe.unanswered
                       else "the API key was refused")
    )
    return _KeyAnswers(probe, balances, balances_error, permissions)


async def _server_time(exchange: Any, clock: Any) -> tuple[int, int | None, str]:
    """(local ms at the midpoint of the round trip, the exchange's ms or None, why not)."""
    server_ms: int | None = None
    server_error = ""
    before = clock.now_ms()
    try:
        server_ms = int(await exchange.server_time_ms())
    except Exception as exc:
        server_error = _safe(exc)
    after = clock.now_ms()
    # the midpoint of the round trip is our best estimate of "now" at the server
    return (before + after) // 2, server_ms, server_error


def _rate_limit(limits: Any, env: Mapping[str, str]) -> RateLimitConfig:
    interval = getattr(limits, "order_interval_seconds", None)
    return RateLimitConfig(
        client_throttle=client_throttle_enabled(env),
        max_orders_per_interval=getattr(limits, "max_orders_per_interval", None),
        order_interval_seconds=None if interval is None else Decimal(str(interval)),
    )


@dataclass(frozen=True)
class PreflightSources:
    """Where the checks look: ``limits`` (anything with the RiskLimits fields:
    RiskPolicySpec or RiskLimits), the exchange and its credentials, the environment,
    the validation reports found, and a clock."""

    limits: Any
    exchange: Any
    credentials: Credentials
    env: Mapping[str, str]
    reports: Sequence[Mapping[str, Any]]
    clock: Any


async def gather_inputs(
    sources: PreflightSources,
    *,
    strategy: str,
    mode: str,
    symbols: Sequence[str],
    namespace: str = "",
    strategy_config: Mapping[str, Any] | None = None,
    allocation: AllocationInputs | None = None,
) -> PreflightInputs:
    """Ask the exchange what the checks need; every failure becomes an input, not a crash.

    ``allocation`` (the strategy's budget on the account) adds the Capital Allocation
    check against the balances read here.
    """
    limits, env = sources.limits, sources.env
    markets, markets_error = await _load_markets(sources.exchange)
    key = await _ask_with_key(sources.exchange, sources.credentials)
    local_ms, server_ms, server_error = await _server_time(sources.exchange, sources.clock)
    return PreflightInputs(
        strategy=strategy,
        namespace=namespace,
        mode=mode,
        symbols=tuple(symbols),
        api_key=key.probe,
        balances=key.balances,
        balances_error=key.balances_error,
        markets=markets,
        markets_error=markets_error,
        rate_limit=_rate_limit(limits, env),
        stop_loss_pct=getattr(limits, "stop_loss_pct", None),
        daily_loss_limit_pct=getattr(limits, "daily_loss_limit_pct", None),
        dashboard_password=env.get("DASHBOARD_PASSWORD"),
        reports=tuple(sources.reports),
        permissions=key.permissions,
        local_ms=local_ms,
        server_ms=server_ms,
        server_error=server_error,
        strategy_config=strategy_config,
        allocation=allocation,
    )


async def preflight_strategy(
    strategy: Any,
    sources: PreflightSources,
    namespace: str = "",
    *,
    committed: Decimal = Decimal(0),
    reserved_by_others: Decimal = Decimal(0),
) -> PreflightReport:
    """All checks for a ``kubetrade.resources.Strategy`` in one call: what the CLI and
    the pre-flight Job run, and what a live runner started without a cluster can call
    before trading (any FAIL: do not start).

    A live strategy's ``initialCapital`` is checked against the account's free balance
    of its quote asset (Capital Allocation): ``committed`` is what of it is already in
    positions (a restart), ``reserved_by_others`` the other strategies' unspent budgets
    on the same account, in the quote asset.
    """
    spec = strategy.spec
    allocation = None
    if spec.mode == "live":
        allocation = AllocationInputs(
            quote_asset=spec.symbols[0].split("/")[1] if spec.symbols else "USDT",
            initial_capital=Decimal(str(spec.initial_capital)),
            pct_of_account=(None if spec.capital_pct_of_account is None
                            else Decimal(str(spec.capital_pct_of_account))),
            committed=committed,
            reserved_by_others=reserved_by_others,
        )
    inputs = await gather_inputs(
        sources,
        strategy=strategy.metadata.name,
        namespace=namespace,
        mode=spec.mode,
        symbols=spec.symbols,
        strategy_config={
            "algorithm": spec.algorithm,
            "parameters": spec.validated_parameters(),
            "timeframe": spec.timeframe,
        },
        allocation=allocation,
    )
    return run_checks(inputs, ts_ms=sources.clock.now_ms())


# -- publishing -------------------------------------------------------------------------


async def publish(redis: Any, keys: Any, report: PreflightReport, config_hash: str = "") -> None:
    """keys.preflight for /api/preflight (and the strategy's own copy, with the
    ``config_hash`` of the configuration checked when the operator's Job gave one), an
    alert per WARN/FAIL, and an audit entry."""
    await write_preflight(redis, keys, report.to_json(), report.strategy, config_hash)
    for r in report.results:
        if r.status is CheckStatus.PASS:
            continue
        fail = r.status is CheckStatus.FAIL
        await raise_alert(redis, keys, Alert(
            kind=AlertKind.PREFLIGHT_FAIL if fail else AlertKind.PREFLIGHT_WARN,
            severity=Severity.CRITICAL if fail else Severity.WARNING,
            title=f"Pre-flight {r.status.value}: {r.name}",
            text=r.message + (
                " A live runner will not start." if fail else " Live trading may start."
            ),
            ts_ms=report.ts_ms,
            strategy=report.strategy,
            data={"check": r.name, "status": r.status.value, "ours": r.ours,
                  "namespace": report.namespace},
        ))
    await write_audit(redis, keys, AuditEntry(
        ts_ms=report.ts_ms,
        actor="preflight",
        action="preflight",
        strategy=report.strategy,
        detail={"status": report.status.value,
                "failed": [r.name for r in report.failed],
                "warned": [r.name for r in report.warned]},
    ))
