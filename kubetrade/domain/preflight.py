"""Pre-flight: the runbook's eight checks before a live runner may start, plus ours.

Each check is a small pure function over inputs gathered beforehand (exchange answers,
risk limits, environment, validation reports), so every FAIL and WARN can be shown in a
unit test without a network; the gathering (which talks to the exchange) lives in
:mod:`kubetrade.validation.preflight` and is the only part that needs one. Any FAIL
keeps a live runner from starting; WARNs let it start but raise alerts, as the runbook
says.

Check names and statuses are the runbook's, word for word. Checks the runbook does not
list carry ``ours=True`` so an operator can tell the contract from our additions.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from kubetrade.domain.allocation import AllocationInputs, allocation_verdict
from kubetrade.domain.models import Balance, MarketInfo, fields_of
from kubetrade.domain.passwords import is_default_password


class CheckStatus(StrEnum):
    PASS = "PASS"  # noqa: S105 (a status, not a password)
    WARN = "WARN"
    FAIL = "FAIL"


# The runbook's names, in the runbook's order.
API_KEY_VALIDITY = "API Key Validity"
SUFFICIENT_BALANCE = "Sufficient Balance"
SYMBOL_AVAILABILITY = "Symbol Availability"
RATE_LIMIT_CONFIGURED = "Rate Limit Configured"
STOP_LOSS_CONFIGURED = "Stop-Loss Configured"
DAILY_LOSS_LIMIT = "Daily Loss Limit"
PASSWORD_CHANGED = "Password Changed"  # noqa: S105 (a check name)
PAPER_VALIDATION = "Paper Validation"
# Ours.
NO_WITHDRAWAL_PERMISSION = "API Key Without Withdrawal"
CLOCK_SKEW = "Clock Skew"

RUNBOOK_CHECKS: tuple[str, ...] = (
    API_KEY_VALIDITY,
    SUFFICIENT_BALANCE,
    SYMBOL_AVAILABILITY,
    RATE_LIMIT_CONFIGURED,
    STOP_LOSS_CONFIGURED,
    DAILY_LOSS_LIMIT,
    PASSWORD_CHANGED,
    PAPER_VALIDATION,
)
OUR_CHECKS: tuple[str, ...] = (NO_WITHDRAWAL_PERMISSION, CLOCK_SKEW)
# Ours, when the inputs carry an allocation (live: kubetrade.domain.allocation).
CAPITAL_ALLOCATION = "Capital Allocation"

MIN_BALANCE_USD = Decimal(100)
# Assets counted as US dollars for the balance check (the runbook: "Verifies USD balance").
USD_ASSETS: frozenset[str] = frozenset({"USD", "USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI"})
# Binance refuses signed requests whose timestamp is off by more than recvWindow
# (default 5000 ms); a second of skew is already a warning sign of a drifting clock.
CLOCK_SKEW_WARN_MS = 1000
CLOCK_SKEW_FAIL_MS = 5000


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: CheckStatus
    message: str
    ours: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status.value,
            "message": self.message,
            "ours": self.ours,
        }


@dataclass(frozen=True)
class PreflightReport:
    strategy: str
    mode: str
    ts_ms: int
    results: tuple[CheckResult, ...]
    namespace: str = ""

    @property
    def failed(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status is CheckStatus.FAIL)

    @property
    def warned(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if r.status is CheckStatus.WARN)

    @property
    def passed(self) -> bool:
        """True when nothing FAILed: a live runner may start (WARNs only alert)."""
        return not self.failed

    @property
    def status(self) -> CheckStatus:
        if self.failed:
            return CheckStatus.FAIL
        if self.warned:
            return CheckStatus.WARN
        return CheckStatus.PASS

    def result(self, name: str) -> CheckResult:
        for r in self.results:
            if r.name == name:
                return r
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            **fields_of(self, "strategy", "namespace", "mode", "ts_ms"),
            "status": self.status.value,
            "passed": self.passed,
            "summary": {
                s.value: sum(1 for r in self.results if r.status is s) for s in CheckStatus
            },
            "checks": [r.to_dict() for r in self.results],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    def table(self) -> str:
        """The runbook's table shape: Check | Status | Description."""
        rows = [("Check", "Status", "Description")]
        for r in self.results:
            rows.append((r.name + (" (ours)" if r.ours else ""), r.status.value, r.message))
        w0 = max(len(r[0]) for r in rows)
        w1 = max(len(r[1]) for r in rows)
        lines = [f"{a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
        lines.insert(1, f"{'-' * w0}  {'-' * w1}  {'-' * 11}")
        verdict = (
            "FAIL: a live runner must not start"
            if self.failed
            else ("WARN: may start; alerts raised" if self.warned else "PASS")
        )
        lines.append("")
        lines.append(f"Pre-flight for {self.strategy or '?'} ({self.mode}): {verdict}")
        return "\n".join(lines)


# -- the runbook's eight ----------------------------------------------------------------


@dataclass(frozen=True)
class ApiKeyProbe:
    """What an authenticated call to the exchange told us about the key; ``unanswered``:
    it failed for another reason (unreachable, timeout, 5xx), so the key was not judged."""

    has_credentials: bool
    ok: bool
    error: str = ""
    unanswered: bool = False


def check_api_key(probe: ApiKeyProbe) -> CheckResult:
    if not probe.has_credentials:
        return CheckResult(
            API_KEY_VALIDITY, CheckStatus.FAIL,
            "no API key: set BINANCE_API_KEY and BINANCE_SECRET_KEY "
            "(or the files apiKey/secretKey in the secrets directory)",
        )
    if not probe.ok:
        return CheckResult(API_KEY_VALIDITY, CheckStatus.FAIL, (
            f"could not check the key, the exchange did not answer: {probe.error or 'no reply'}"
            if probe.unanswered else
            f"exchange refused the key: {probe.error or 'authentication failed'}"))
    return CheckResult(API_KEY_VALIDITY, CheckStatus.PASS, "authenticated call succeeded")


def _unanswered(
    name: str, status: CheckStatus, what: str, error: str, ours: bool = False
) -> CheckResult:
    """The check ``name`` when the exchange did not give what it needs: "could not
    <what>", with the error when there is one."""
    return CheckResult(name, status, f"could not {what}{': ' + error if error else ''}", ours)


def usd_balance(balances: Mapping[str, Balance]) -> Decimal:
    """Free balance in USD-like assets: what a long-only spot strategy can spend."""
    return sum((b.free for a, b in balances.items() if a.upper() in USD_ASSETS), Decimal(0))


def check_balance(
    balances: Mapping[str, Balance] | None,
    minimum: Decimal = MIN_BALANCE_USD,
    error: str = "",
) -> CheckResult:
    if balances is None:
        return _unanswered(SUFFICIENT_BALANCE, CheckStatus.FAIL, "read balances", error)
    total = usd_balance(balances)
    held = ", ".join(
        f"{a} {b.free}" for a, b in sorted(balances.items()) if a.upper() in USD_ASSETS and b.free
    )
    if total < minimum:
        return CheckResult(
            SUFFICIENT_BALANCE, CheckStatus.FAIL,
            f"USD balance ${total} is below the ${minimum} minimum"
            + (f" ({held})" if held else ""),
        )
    return CheckResult(
        SUFFICIENT_BALANCE, CheckStatus.PASS, f"USD balance ${total} ({held})"
    )


def check_symbols(
    symbols: Sequence[str], markets: Mapping[str, MarketInfo] | None, error: str = ""
) -> CheckResult:
    if markets is None:
        return _unanswered(
            SYMBOL_AVAILABILITY, CheckStatus.FAIL, "load the exchange's markets", error
        )
    if not symbols:
        return CheckResult(SYMBOL_AVAILABILITY, CheckStatus.FAIL, "the strategy lists no symbols")
    missing = [s for s in symbols if s not in markets]
    if missing:
        return CheckResult(
            SYMBOL_AVAILABILITY, CheckStatus.FAIL,
            f"not traded on the exchange: {', '.join(missing)}",
        )
    return CheckResult(SYMBOL_AVAILABILITY, CheckStatus.PASS, f"all listed: {', '.join(symbols)}")


@dataclass(frozen=True)
class RateLimitConfig:
    """Both layers of rate limiting: ccxt's request throttle and our order limiter."""

    client_throttle: bool
    max_orders_per_interval: int | None
    order_interval_seconds: Decimal | None


def check_rate_limit(config: RateLimitConfig) -> CheckResult:
    off: list[str] = []
    if not config.client_throttle:
        off.append("request throttling is disabled (KUBETRADE_RATE_LIMIT)")
    if not config.max_orders_per_interval or not config.order_interval_seconds:
        off.append("the order rate limit (maxOrdersPerInterval/orderIntervalSeconds) is 0")
    if off:
        return CheckResult(RATE_LIMIT_CONFIGURED, CheckStatus.WARN, "; ".join(off))
    return CheckResult(
        RATE_LIMIT_CONFIGURED, CheckStatus.PASS,
        f"requests throttled; at most {config.max_orders_per_interval} orders per "
        f"{config.order_interval_seconds}s",
    )


def _pct(value: Decimal | float | int | None) -> Decimal:
    return Decimal(0) if value is None else Decimal(str(value))


def _positive_pct(
    name: str, field: str, cr_field: str, value: Decimal | float | int | None
) -> CheckResult:
    """Check ``name``: the RiskPolicy percentage ``field`` (``spec.<cr_field>``) is set
    above 0 (None counts as 0)."""
    pct = _pct(value)
    if pct <= 0:
        return CheckResult(
            name, CheckStatus.FAIL,
            f"{field} (RiskPolicy spec.{cr_field}) must be > 0 for live trading, got {pct}",
        )
    return CheckResult(name, CheckStatus.PASS, f"{field} = {pct}%")


def check_stop_loss(stop_loss_pct: Decimal | float | int | None) -> CheckResult:
    return _positive_pct(STOP_LOSS_CONFIGURED, "stop_loss_pct", "stopLossPct", stop_loss_pct)


def check_daily_loss_limit(daily_loss_limit_pct: Decimal | float | int | None) -> CheckResult:
    return _positive_pct(
        DAILY_LOSS_LIMIT, "daily_loss_limit_pct", "dailyLossLimitPct", daily_loss_limit_pct
    )


def check_password(password: str | None) -> CheckResult:
    """Never echoes the password, only whether it is usable."""
    if password is None or password.strip() == "":
        return CheckResult(
            PASSWORD_CHANGED, CheckStatus.WARN,
            "DASHBOARD_PASSWORD is not set: the dashboard has no authentication",
        )
    if is_default_password(password):
        return CheckResult(
            PASSWORD_CHANGED, CheckStatus.WARN,
            "DASHBOARD_PASSWORD is a default/example value: set a real password",
        )
    return CheckResult(PASSWORD_CHANGED, CheckStatus.PASS, "dashboard authentication enabled")


COMPARED_CONFIG = ("algorithm", "parameters", "timeframe")


def check_paper_validation(
    reports: Iterable[Mapping[str, Any]],
    strategy: str,
    config: Mapping[str, Any] | None = None,
) -> CheckResult:
    """The newest validation of *this* strategy, as it is configured now, must be GO.

    A GO for another strategy proves nothing about this one, a later NO-GO supersedes
    an earlier GO, and a GO for other parameters validated a different strategy in all
    but name; so only the newest report of the strategy counts, and when it records
    what was run, its algorithm, parameters and timeframe must be the current ones.
    """
    own = [r for r in reports if _report_strategy(r) == strategy]
    if not own:
        return CheckResult(
            PAPER_VALIDATION, CheckStatus.WARN,
            f"no validation report for strategy {strategy!r}: run `kubetrade validate`",
        )
    newest = max(own, key=_report_time)
    decision = str(newest.get("decision", ""))
    where = str(newest.get("_source", "")) or "latest report"
    if decision != "GO":
        failed = [
            c.get("name", "?") for c in newest.get("criteria", []) if not c.get("passed", False)
        ]
        detail = f" (failed: {', '.join(failed)})" if failed else ""
        return CheckResult(
            PAPER_VALIDATION, CheckStatus.WARN,
            f"latest validation of {strategy!r} is {decision or 'undecided'}{detail} [{where}]",
        )
    run = newest.get("run")
    if config is not None and isinstance(run, Mapping):
        changed = [k for k in COMPARED_CONFIG if k in run and k in config and run[k] != config[k]]
        if changed:
            return CheckResult(
                PAPER_VALIDATION, CheckStatus.WARN,
                f"the GO validation of {strategy!r} was for a different {', '.join(changed)} "
                f"({', '.join(f'{k}={run[k]}' for k in changed)}); validate the current "
                f"configuration [{where}]",
            )
    return CheckResult(PAPER_VALIDATION, CheckStatus.PASS, f"GO report found [{where}]")


def _report_strategy(report: Mapping[str, Any]) -> str:
    run = report.get("run")
    if isinstance(run, Mapping):
        return str(run.get("strategy", ""))
    return str(report.get("strategy", ""))


def _report_time(report: Mapping[str, Any]) -> int:
    for key in ("finished_ms", "generated_ms", "ts_ms"):
        value = report.get(key)
        if isinstance(value, int):
            return value
    return 0


# -- ours -------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyPermissions:
    """Binance GET /sapi/v1/account/apiRestrictions, or why it could not be read."""

    enable_withdrawals: bool | None
    enable_spot_trading: bool | None = None
    error: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def check_withdrawal_permission(perms: KeyPermissions | None) -> CheckResult:
    if perms is None or perms.enable_withdrawals is None:
        why = perms.error if perms is not None and perms.error else "not available"
        return CheckResult(
            NO_WITHDRAWAL_PERMISSION, CheckStatus.WARN,
            f"could not read the key's permissions ({why}); verify no withdrawal by hand",
            ours=True,
        )
    if perms.enable_withdrawals:
        return CheckResult(
            NO_WITHDRAWAL_PERMISSION, CheckStatus.FAIL,
            "the API key may withdraw funds: create a key with spot trading only",
            ours=True,
        )
    if perms.enable_spot_trading is False:
        return CheckResult(
            NO_WITHDRAWAL_PERMISSION, CheckStatus.FAIL,
            "the API key cannot trade spot: enable spot trading on the key",
            ours=True,
        )
    return CheckResult(
        NO_WITHDRAWAL_PERMISSION, CheckStatus.PASS,
        "withdrawals disabled on the key", ours=True,
    )


def check_clock_skew(
    local_ms: int,
    server_ms: int | None,
    warn_ms: int = CLOCK_SKEW_WARN_MS,
    fail_ms: int = CLOCK_SKEW_FAIL_MS,
    error: str = "",
) -> CheckResult:
    if server_ms is None:
        return _unanswered(
            CLOCK_SKEW, CheckStatus.WARN, "read the exchange's time", error, ours=True
        )
    skew = local_ms - server_ms
    text = f"local clock is {abs(skew)} ms {'ahead of' if skew >= 0 else 'behind'} the exchange"
    if abs(skew) >= fail_ms:
        return CheckResult(
            CLOCK_SKEW, CheckStatus.FAIL,
            f"{text}; signed requests are refused beyond {fail_ms} ms: sync the clock (NTP)",
            ours=True,
        )
    if abs(skew) >= warn_ms:
        return CheckResult(CLOCK_SKEW, CheckStatus.WARN, f"{text}; sync the clock (NTP)", ours=True)
    return CheckResult(CLOCK_SKEW, CheckStatus.PASS, text, ours=True)


# -- all together -----------------------------------------------------------------------


@dataclass(frozen=True)
class PreflightInputs:
    """Everything the checks look at, gathered once (see ``gather_inputs``)."""

    strategy: str
    mode: str
    symbols: tuple[str, ...]
    api_key: ApiKeyProbe
    balances: Mapping[str, Balance] | None
    markets: Mapping[str, MarketInfo] | None
    rate_limit: RateLimitConfig
    stop_loss_pct: Decimal | None
    daily_loss_limit_pct: Decimal | None
    dashboard_password: str | None
    reports: tuple[Mapping[str, Any], ...]
    permissions: KeyPermissions | None
    local_ms: int
    server_ms: int | None
    namespace: str = ""
    balances_error: str = ""
    markets_error: str = ""
    server_error: str = ""
    min_balance_usd: Decimal = MIN_BALANCE_USD
    strategy_config: Mapping[str, Any] | None = None
    """algorithm, parameters, timeframe: what a GO report must have validated."""
    allocation: AllocationInputs | None = None
    """The strategy's budget on the account: adds the Capital Allocation check."""


def run_checks(inputs: PreflightInputs, ts_ms: int) -> PreflightReport:
    """The runbook's eight in its order, then ours (Capital Allocation last, when the
    inputs carry an allocation)."""
    results: tuple[CheckResult, ...] = (
        check_api_key(inputs.api_key),
        check_balance(inputs.balances, inputs.min_balance_usd, inputs.balances_error),
        check_symbols(inputs.symbols, inputs.markets, inputs.markets_error),
        check_rate_limit(inputs.rate_limit),
        check_stop_loss(inputs.stop_loss_pct),
        check_daily_loss_limit(inputs.daily_loss_limit_pct),
        check_password(inputs.dashboard_password),
        check_paper_validation(inputs.reports, inputs.strategy, inputs.strategy_config),
        check_withdrawal_permission(inputs.permissions),
        check_clock_skew(inputs.local_ms, inputs.server_ms, error=inputs.server_error),
    )
    if inputs.allocation is not None:
        status, text = allocation_verdict(inputs.allocation, inputs.balances, inputs.balances_error)
        results += (CheckResult(CAPITAL_ALLOCATION, CheckStatus(status), text, ours=True),)
    return PreflightReport(
        strategy=inputs.strategy,
        mode=inputs.mode,
        ts_ms=ts_ms,
        results=results,
        namespace=inputs.namespace,
    )


def client_throttle_enabled(env: Mapping[str, str]) -> bool:
    """KUBETRADE_RATE_LIMIT switches the exchange client's request throttle; on unless
    explicitly turned off."""
    return env.get("KUBETRADE_RATE_LIMIT", "true").strip().lower() not in (
        "0", "false", "off", "no", "disabled",
    )
