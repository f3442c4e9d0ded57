"""`kubetrade preflight`: the runbook's pre-flight checks before live trading.

Runs on a laptop (``--strategy-file``) or as the operator's init Job in a cluster
(``--strategy NAME --namespace NS``); prints a table (or ``--json``), stores the result
for ``GET /api/preflight``, raises an alert per WARN/FAIL, and exits non-zero on any
FAIL so the Job fails and the live runner does not start.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from kubetrade.cli._command import add_cluster_arguments, add_command, pod_namespace
from kubetrade.domain.percentages import limits_fractions
from kubetrade.exchange.testnet import testnet_setting

EXIT_FAIL = 1
EXIT_USAGE = 2


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "preflight", run,
                    "run the pre-flight checks a live strategy must pass",
                    "Run the runbook's eight pre-flight checks (plus ours) for a strategy. "
                    "Exit code 1 when any check FAILs.")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--strategy-file", metavar="FILE",
                     help="Strategy YAML (may also hold its RiskPolicy)")
    src.add_argument("--strategy", metavar="NAME", help="Strategy in the cluster")
    add_cluster_arguments(p, (pod_namespace(), "namespace of --strategy (default: "
                              "$POD_NAMESPACE or default)"))
    p.add_argument("--risk-policy-file", metavar="FILE",
                   help="RiskPolicy YAML (default: the one named by the strategy in "
                   "--strategy-file, else defaults with STOP_LOSS_PCT/DAILY_LOSS_LIMIT_PCT)")
    p.add_argument("--report-dir", default="data",
                   help="where validation reports are looked for (default: data/)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--no-publish", action="store_true",
                   help="do not store results/alerts in Redis even when REDIS_URL is set")


def _risk_from_env(env: dict[str, str]) -> Any:
    """The runbook configures stop-loss and daily loss limit by environment variables;
    they apply when no RiskPolicy manifest is given (as for the runner and local)."""
    from kubetrade.cli._risk_env import risk_spec_from_env
    from kubetrade.resources import RiskPolicySpec

    return RiskPolicySpec.model_validate(risk_spec_from_env(env))


def load_inputs(args: argparse.Namespace, env: dict[str, str]) -> tuple[Any, Any, Any]:
    """(strategy, risk policy spec, kube api client or None)."""
    from kubetrade.resources import RiskPolicy, load_manifests, load_strategy_file
    from kubetrade.validation.cluster import (
        cluster_risk_policy,
        cluster_strategy,
        kube_api_client,
    )
    from kubetrade.validation.plan import check_policy_ref

    api = None
    if args.strategy_file:
        strategy = load_strategy_file(args.strategy_file)
        if args.risk_policy_file:
            policies = [r for r in load_manifests(args.risk_policy_file)
                        if isinstance(r, RiskPolicy)]
            if len(policies) != 1:
                raise ValueError(f"{args.risk_policy_file}: expected exactly one RiskPolicy, "
                                 f"found {len(policies)}")
        else:
            ref = strategy.spec.risk_policy_ref
            held = [r for r in load_manifests(args.strategy_file) if isinstance(r, RiskPolicy)]
            policies = [r for r in held if r.metadata.name == ref] or check_policy_ref(
                ref, [r.metadata.name for r in held], args.strategy_file)
        risk = policies[0].spec if policies else _risk_from_env(env)
    else:
        api = kube_api_client(args.kubeconfig)
        strategy = cluster_strategy(api, args.namespace, args.strategy)
        policy = cluster_risk_policy(api, args.namespace, strategy.spec.risk_policy_ref)
        risk = policy.spec if policy is not None else _risk_from_env(env)
    return strategy, risk, api


def make_exchange(strategy: Any, credentials: Any, env: dict[str, str]) -> Any:
    from kubetrade.domain.clock import SystemClock
    from kubetrade.exchange.binance import BinanceExchange

    setting = testnet_setting(env.get("BINANCE_TESTNET"))
    testnet = setting if setting is not None else bool(strategy.spec.exchange.testnet)
    return BinanceExchange(
        api_key=credentials.api_key or None,
        secret=credentials.secret or None,
        testnet=testnet,
        base_url=env.get("KUBETRADE_EXCHANGE_URL") or None,
        clock=SystemClock(),
    )


def budgeted(exchange: Any, redis: Any, keys: Any, strategy: Any, env: dict[str, str],
             clock: Any) -> Any:
    """``exchange`` spending the request weight of the egress IP (KUBETRADE_EGRESS_IP)
    and the order budget of the Strategy's account (its credentialsSecret) that every
    runner spends from (``exchange/budgeted.py``)."""
    from kubetrade.exchange.budgeted import BudgetedExchange
    from kubetrade.exchange.ratelimit import BudgetGate, budget_plan
    from kubetrade.state.budgets import RedisBudget

    account = strategy.spec.exchange.credentials_secret or "default"
    budget = RedisBudget(redis, keys, ip=env.get("KUBETRADE_EGRESS_IP") or "default",
                         account=account, plan=budget_plan)
    return BudgetedExchange(exchange, BudgetGate(budget, clock))


async def _reports(args: argparse.Namespace, api: Any, redis: Any, keys: Any) -> list[Any]:
    from kubetrade.logs import get_logger
    from kubetrade.state.client import RedisError
    from kubetrade.state.reports import read_validation_latest
    from kubetrade.validation.cluster import cluster_validation_reports
    from kubetrade.validation.report import load_reports

    reports: list[Any] = list(load_reports(args.report_dir))
    if redis is not None:
        try:
            latest = await read_validation_latest(redis, keys)
        except RedisError as exc:  # an input among others: judged without it, said so
            get_logger("kubetrade.cli.preflight").warning(
                "preflight.redis_unavailable", error=str(exc),
                note="the latest validation result in Redis was not read")
            latest = None
        if latest:
            try:
                data = json.loads(latest)
                data["_source"] = "redis " + keys.validation_latest
                reports.append(data)
            except ValueError:
                pass
    if api is not None:
        reports.extend(await asyncio.to_thread(cluster_validation_reports, api, args.namespace))
    return reports


async def run_preflight(args: argparse.Namespace, env: dict[str, str]) -> Any:
    from kubetrade.domain.clock import SystemClock
    from kubetrade.state.client import connect
    from kubetrade.state.keys import keys_from_env
    from kubetrade.validation import preflight as pf

    strategy, risk, api = load_inputs(args, env)
    for message in limits_fractions(risk):  # a RiskPolicySpec is a RiskLimits
        print(f"kubetrade preflight: warning: RiskPolicy {message}", file=sys.stderr)
    credentials = pf.load_credentials(env)
    redis = None
    keys = keys_from_env()
    if env.get("REDIS_URL"):
        redis = connect(env["REDIS_URL"])
    clock = SystemClock()
    exchange = make_exchange(strategy, credentials, env)
    if redis is not None:  # its calls spend the runners' shared rate budgets
        exchange = budgeted(exchange, redis, keys, strategy, env, clock)
    try:
        reports = await _reports(args, api, redis, keys)
        sources = pf.PreflightSources(risk, exchange, credentials, env, reports, clock)
        report = await pf.preflight_strategy(
            strategy, sources, namespace=args.namespace if api is not None else "")
        if redis is not None and not args.no_publish:
            await _publish(pf, redis, keys, report, env.get("KUBETRADE_CONFIG_HASH", ""))
        return report
    finally:
        await exchange.close()
        if redis is not None:
            await redis.aclose()
        if api is not None:
            api.close()


async def _publish(pf: Any, redis: Any, keys: Any, report: Any, config_hash: str) -> None:
    """Store the results for /api/preflight and the operator; a Redis that does not
    answer leaves the verdict as it is (printed, and the exit code) and says so."""
    from kubetrade.logs import get_logger
    from kubetrade.state.client import RedisError

    try:
        await pf.publish(redis, keys, report, config_hash)
    except RedisError as exc:
        get_logger("kubetrade.cli.preflight").warning(
            "preflight.not_published", error=str(exc),
            note="results not stored in Redis (GET /api/preflight keeps the previous ones)")


def run(args: argparse.Namespace) -> int:
    from kubetrade.logs import configure_logging

    # logs to stderr: stdout carries the table or the JSON a script parses
    configure_logging(stream=sys.stderr)
    env = dict(os.environ)
    try:
        report = asyncio.run(run_preflight(args, env))
    except (ValueError, OSError) as exc:
        print(f"kubetrade preflight: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as exc:  # e.g. the Strategy is not in the cluster
        from kubernetes.client.exceptions import ApiException

        if not isinstance(exc, ApiException):
            raise
        print(f"kubetrade preflight: Kubernetes API: {exc.status} {exc.reason}",
              file=sys.stderr)
        return EXIT_USAGE
    print(report.to_json() if args.json else report.table())
    return EXIT_FAIL if not report.passed else 0
