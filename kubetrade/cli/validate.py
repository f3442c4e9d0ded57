"""`kubetrade validate`: the runbook's paper-trading validation, ending GO or NO-GO.

    kubetrade validate --strategy-file s.yaml --duration=48h        # forward, live data
    kubetrade validate --strategy-file s.yaml --replay candles.csv  # history, full speed
    kubetrade validate --strategy btc-sma --namespace trading ...   # Strategy from the cluster
    kubetrade validate --validation-run NAME --namespace NS         # as the operator's Job

Exit code 0 for GO, 3 for NO-GO (a completed run that says "do not go live"; distinct
from 1, a run that could not complete, and 2, a usage error). With --validation-run a
completed run exits 0 either way: the decision is in the ValidationRun's status.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import threading
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("kubetrade.validation")

EXIT_GO = 0
EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_NO_GO = 3


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "validate",
        help="paper-trade a strategy (forward or replay) and decide GO/NO-GO",
        description="Paper-trade a strategy forward on live market data for --duration, "
        "or over recorded candles with --replay, and judge it by the GO/NO-GO criteria. "
        "Exit 0 for GO, 3 for NO-GO.",
    )
    p.add_argument("--strategy-file", metavar="FILE",
                   help="Strategy YAML (may also hold its RiskPolicy)")
    p.add_argument("--strategy", metavar="NAME", help="Strategy in the cluster (--namespace)")
    p.add_argument("--validation-run", metavar="NAME",
                   help="run the ValidationRun NAME in --namespace (the operator's Job does); "
                   "progress, decision and report ConfigMap go to its status")
    p.add_argument("--namespace", "-n", default=os.environ.get("POD_NAMESPACE", "default"))
    p.add_argument("--kubeconfig", default=None,
                   help="kubeconfig (default: in-cluster, then $KUBECONFIG)")
    p.add_argument("--risk-policy-file", metavar="FILE",
                   help="RiskPolicy YAML (default: the strategy's from the same file or the "
                   "cluster, else the defaults)")
    p.add_argument("--duration", default=None,
                   help="forward run length, e.g. 48h, 90m, 1d12h (default 48h)")
    p.add_argument("--replay", metavar="FILE",
                   help="replay recorded candles (CSV timestamp_ms,open,high,low,close,volume) "
                   "at full speed instead of trading forward; 'bundled' for the shipped ones, "
                   "'store' for the candle store (--since/--until)")
    from kubetrade.cli.data import add_replay_arguments

    add_replay_arguments(p)
    p.add_argument("--symbol", help="with --replay: which of the strategy's symbols the file "
                   "holds (default the first)")
    p.add_argument("--min-trades", default=None, help="criterion (default 10)")
    p.add_argument("--min-win-rate", default=None,
                   help="criterion, fraction or percent: 0.45 or 45%% (default 0.45)")
    p.add_argument("--min-sharpe", default=None, help="criterion (default 0.5)")
    p.add_argument("--max-drawdown", default=None,
                   help="criterion, fraction or percent: 0.15 or 15%% (default 0.15)")
    _add_judging_and_report_flags(p)
    p.set_defaults(func=run)


def _add_judging_and_report_flags(p: Any) -> None:
    """--confidence, friction, sweep and report flags of ``kubetrade validate``."""
    p.add_argument("--confidence", default=None, choices=["0.9", "0.95", "0.99"],
                   help="judge Sharpe and win rate only when the threshold lies outside "
                   "their two-sided confidence interval (else 'insufficient data'); "
                   "default off (a Sharpe from under 7 days is never judged)")
    p.add_argument("--fee-rate", default=None,
                   help="fee per fill, fraction or percent of its value, both sides: 0.001 or "
                   "0.1%% (default 0.1%%, Binance spot taker)")
    p.add_argument("--slippage-bps", default=None,
                   help="market orders fill this many basis points worse than the last price, "
                   "both sides (default 2)")
    p.add_argument("--participation", default=None,
                   help="largest share of a candle's volume a resting limit order fills per "
                   "candle, fraction or percent (default 10%%)")
    p.add_argument("--report-dir", default="data", help="where the JSON report goes (data/)")
    p.add_argument("--sweep", action="append", metavar="NAME=V1,V2,...", default=None,
                   help="with --replay: try every combination of these parameter values "
                   "(repeat per parameter), choose on the in-sample part, judge the best on "
                   "the rest (walk-forward; GO/NO-GO from the out-of-sample run)")
    p.add_argument("--samples", type=int, default=None,
                   help="with --sweep: this many random combinations of the grid (--seed)")
    p.add_argument("--seed", type=int, default=0, help="with --samples (default 0)")
    p.add_argument("--in-sample", type=float, default=0.7,
                   help="with --sweep: fraction of the candles to choose on (default 0.7)")
    p.add_argument("--jobs", type=int, default=None,
                   help="with --sweep: worker processes (default: all cores)")
    p.add_argument("--sweep-slices", type=int, default=None, metavar="N",
                   help="with --sweep and --validation-run: run only slice "
                   "$JOB_COMPLETION_INDEX of N and report it for the operator to gather (a "
                   "pod of the sweep's Indexed Job does)")
    p.add_argument("--sweep-top", type=int, default=10, metavar="N",
                   help="with --sweep: ranked combinations kept in the report (default 10)")
    p.add_argument("--equity-csv", metavar="FILE", default=None,
                   help="also write the full-resolution equity curve (ts_ms,equity) to FILE; "
                   "the report keeps at most 20,000 of its points")
    p.add_argument("--no-html", action="store_true",
                   help="do not write the HTML page (plots) beside the JSON report")


def _criteria(args: argparse.Namespace, spec_criteria: Any | None) -> Any:
    """Runbook defaults, then the ValidationRun's spec, then flags (the most specific)."""
    from decimal import Decimal

    from kubetrade.domain.gonogo import Criteria

    overrides: dict[str, Any] = {}
    if spec_criteria is not None:
        overrides.update({
            "min_trades": spec_criteria.min_trades,
            "min_win_rate": Decimal(spec_criteria.min_win_rate_pct) / 100,
            "min_sharpe": spec_criteria.min_sharpe,
            "max_drawdown": Decimal(spec_criteria.max_drawdown_pct) / 100,
        })
    flags: dict[str, str] = {}
    for key in ("min_trades", "min_win_rate", "min_sharpe", "max_drawdown"):
        value = getattr(args, key)
        if value is not None:
            overrides[key] = value
            flags[key] = "--" + key.replace("_", "-")
            if key in ("min_win_rate", "max_drawdown") and str(value).strip() in ("1", "1.0"):
                # 100 % as a gate is no gate; 1 % was more likely meant
                raise ValueError(f"{flags[key]}: 1 is ambiguous; give 1% (or 0.01) for one "
                                 "percent, or 100% for all")
    try:
        return Criteria.from_overrides(overrides)
    except ValueError as exc:
        raise _flag_named(exc, flags) from None


def _friction(args: argparse.Namespace, spec_friction: Any | None) -> Any:
    """The paper broker's defaults, then the ValidationRun's spec, then flags."""
    from decimal import Decimal

    from kubetrade.domain.gonogo import parse_fraction
    from kubetrade.validation.plan import Friction

    values: dict[str, Decimal] = {}
    if spec_friction is not None:
        values = {"fee_rate": Decimal(spec_friction.fee_rate_pct) / 100,
                  "slippage_bps": Decimal(spec_friction.slippage_bps),
                  "participation": Decimal(spec_friction.participation_pct) / 100}
    if args.fee_rate is not None:
        values["fee_rate"] = parse_fraction(args.fee_rate, "--fee-rate")
    if args.slippage_bps is not None:
        try:
            values["slippage_bps"] = Decimal(str(args.slippage_bps).strip())
        except ArithmeticError:
            raise ValueError(f"--slippage-bps: {args.slippage_bps!r} is not a number") from None
    if args.participation is not None:
        values["participation"] = parse_fraction(args.participation, "--participation")
    given = {"fee rate": "--fee-rate", "slippage": "--slippage-bps",
             "participation": "--participation"}
    try:
        return Friction(**values)
    except ValueError as exc:
        raise _flag_named(exc, {name: flag for name, flag in given.items()
                                if getattr(args, flag[2:].replace("-", "_")) is not None}
                          ) from None


def _flag_named(exc: ValueError, names: dict[str, str]) -> ValueError:
    """``exc`` with its leading ``name:`` replaced by the flag (``names``: name -> flag)
    the value came from; ``exc`` itself when no flag gave it."""
    text = str(exc)
    for name, flag in names.items():
        if text.startswith(f"{name}:"):
            return ValueError(flag + text[len(name):])
    return exc


def _sweep(args: argparse.Namespace, replaying: bool) -> Any:
    """The SweepSpec of --sweep, or None; ValueError without --replay."""
    if not args.sweep:
        return None
    if not replaying:
        raise ValueError("--sweep needs --replay (a sweep replays history)")
    from kubetrade.validation.sweep import SweepSpec, parse_grid

    slices = getattr(args, "sweep_slices", None)
    if slices is not None and not args.validation_run:
        raise ValueError("--sweep-slices needs --validation-run (the operator gathers slices)")
    from kubetrade.validation.sweep_slice import slice_index_from_env

    return SweepSpec(parse_grid(args.sweep), args.samples, args.seed, args.in_sample,
                     args.jobs, slices, slice_index_from_env() if slices else 0,
                     getattr(args, "sweep_top", 10))


@dataclass
class _Source:
    """A run's strategy and what its ValidationRun (if any) asked for."""

    strategy: Any
    limits: Any | None = None
    spec_criteria: Any | None = None
    spec_friction: Any | None = None
    duration: str | None = None
    replay: str | None = None


def build_plan(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(plan, kube api client or None, ClusterReporter or None).

    With --validation-run, a spec that cannot be run (missing Strategy, bad candle
    file) is written to the ValidationRun's status before the error propagates, so
    `kubectl get validationrun` says why instead of only the Job's exit code.
    """
    holder: list[Any] = []
    try:
        return _build_plan(args, holder)
    except Exception as exc:
        if holder:
            holder[0].fail(f"{type(exc).__name__}: {exc}")
        raise


def _say_fractions(limits: Any) -> None:
    """A RiskPolicy percentage written as a fraction, said on stderr: allowed, but a
    0.05 % stop-loss is rarely what was meant (kubetrade.domain.percentages)."""
    from kubetrade.domain.percentages import limits_fractions

    for message in limits_fractions(limits):
        print(f"kubetrade validate: warning: RiskPolicy {message}", file=sys.stderr)


def _build_plan(args: argparse.Namespace, holder: list[Any]) -> tuple[Any, Any, Any]:
    from kubetrade.resources import RiskPolicySpec, load_strategy_file
    from kubetrade.validation.plan import (
        ValidationPlan,
        limits_from_file,
        parse_duration,
        replay_path_for,
    )

    if bool(args.strategy_file) == bool(args.strategy or args.validation_run):
        raise ValueError(
            "give either --strategy-file FILE, or --strategy NAME and/or --validation-run NAME"
        )
    api = None
    reporter = None
    if args.strategy_file:
        strategy = load_strategy_file(args.strategy_file)
        source = _Source(strategy, limits_from_file(args.strategy_file,
                                                    strategy.spec.risk_policy_ref),
                         duration=args.duration, replay=args.replay)
    else:
        from kubetrade.validation.cluster import kube_api_client  # kubernetes: ~0.5 s

        api = kube_api_client(args.kubeconfig)
        source, reporter = _from_cluster(args, api, holder)
    strategy = source.strategy
    limits = source.limits
    if args.risk_policy_file:
        limits = limits_from_file(args.risk_policy_file, None)
    if limits is None:
        limits = RiskPolicySpec().to_limits()
    _say_fractions(limits)
    from decimal import Decimal
    from pathlib import Path

    from kubetrade.cli.data import replay_settings

    from_store = source.replay == "store"
    replay_path = (replay_path_for(source.replay, args.symbol, strategy)
                   if source.replay and not from_store else None)
    load_options, replay_store = replay_settings(args, from_store)
    plan = ValidationPlan(
        strategy=strategy,
        limits=limits,
        criteria=_criteria(args, source.spec_criteria),
        friction=_friction(args, source.spec_friction),
        confidence=Decimal(args.confidence) if args.confidence else None,
        equity_csv=Path(args.equity_csv) if args.equity_csv else None,
        sweep=_sweep(args, bool(source.replay)),
        mode="replay" if source.replay else "forward",
        replay_path=replay_path,
        load_options=load_options,
        replay_store=replay_store,
        data_dir=Path(args.datadir) if getattr(args, "datadir", None) else None,
        symbol=args.symbol,
        duration_s=parse_duration(source.duration or "48h"),
        namespace=args.namespace if api is not None else "",
        validation_run=args.validation_run or "",
    )
    return plan, api, reporter


def _from_cluster(
    args: argparse.Namespace, api: Any, holder: list[Any]
) -> tuple[_Source, Any]:
    """The Strategy (and its RiskPolicy's limits) from the cluster, and with
    --validation-run the ValidationRun's spec and its ClusterReporter (also appended to
    ``holder`` as soon as it exists, so a later error reaches the run's status)."""
    from kubetrade.resources import ValidationRun
    from kubetrade.validation.cluster import cluster_risk_policy, cluster_strategy
    from kubetrade.validation.cluster_report import ClusterReporter

    name = args.strategy
    reporter = None
    spec_criteria = spec_friction = None
    duration = args.duration
    replay = args.replay
    if args.validation_run:
        reporter = ClusterReporter(api, args.namespace, args.validation_run)
        holder.append(reporter)
        doc = reporter.get()
        doc.pop("status", None)
        vr = ValidationRun.model_validate({k: doc[k] for k in ("apiVersion", "kind", "spec")}
                                          | {"metadata": {"name": args.validation_run}})
        if name and name != vr.spec.strategy_ref:
            raise ValueError(
                f"--strategy {name} differs from ValidationRun {args.validation_run}'s "
                f"spec.strategyRef {vr.spec.strategy_ref}"
            )
        name = vr.spec.strategy_ref
        spec_criteria = vr.spec.criteria
        spec_friction = vr.spec.friction
        duration = duration or vr.spec.duration
        replay = replay or vr.spec.replay
    strategy = cluster_strategy(api, args.namespace, name)
    policy = cluster_risk_policy(api, args.namespace, strategy.spec.risk_policy_ref)
    limits = policy.spec.to_limits() if policy is not None else None
    return _Source(strategy, limits, spec_criteria, spec_friction, duration, replay), reporter


def execute(args: argparse.Namespace) -> tuple[int, dict[str, Any] | None]:
    """Run a validation as the flags say; returns (exit code, report)."""
    from kubetrade.domain.clock import SystemClock
    from kubetrade.validation.report import write_report
    from kubetrade.validation.run import run_plan
    from kubetrade.validation.summary import format_summary

    plan, api, reporter = build_plan(args)
    wall = SystemClock()
    started = wall.now_ms()
    page = ""
    try:
        if plan.sweep is not None and plan.sweep.slices is not None:
            from kubetrade.validation.sweep_slice import execute_slice

            return execute_slice(plan, reporter, wall)
        on_update = _progress_sinks(reporter)
        report = run_plan(plan, wall, started, on_update)
        try:
            written = write_report(report, args.report_dir, report["finished_ms"])
            location = str(written)
            if not args.no_html:
                from kubetrade.validation.html import write_html

                page = f"\n  page: {write_html(report, written)}"
        except OSError as exc:
            if reporter is None:
                raise
            # in a pod the ConfigMap is the report of record; a read-only or full
            # disk must not lose a finished run
            log.warning("could not write the report file in %s: %s", args.report_dir, exc)
            location = "(no file)"
        if reporter is not None:
            from kubetrade.validation.cluster_report import report_config_map_name

            cm = report_config_map_name(reporter.name)
            location = f"{location} (ConfigMap {args.namespace}/{cm})"
        summary = format_summary(report, location) + page
        if reporter is not None:
            reporter.finish(report, summary)
        print(summary, flush=True)
        if os.environ.get("REDIS_URL"):
            from kubetrade.validation.publish import publish_to

            asyncio.run(publish_to(os.environ["REDIS_URL"], report, location, summary))
        if reporter is not None:
            # a NO-GO is a completed Job: the decision is in the status, and a failing
            # exit code would make Kubernetes retry a run that has nothing to retry
            return EXIT_GO, report
        return (EXIT_GO if report["decision"] == "GO" else EXIT_NO_GO), report
    except BaseException as exc:
        _failed(exc, reporter)
        raise
    finally:
        if api is not None:
            api.close()


def _failed(exc: BaseException, reporter: Any) -> None:
    """A run that broke off: the ValidationRun (if any) is failed with the reason; a
    termination that library code wrapped is raised again as itself (from ``exc``)."""
    termination = termination_in(exc)
    if reporter is not None:
        failure = termination or exc
        reporter.fail(f"{type(failure).__name__}: {failure}")
    if termination is not None and termination is not exc:
        raise Terminated(str(termination)) from exc


def _progress_sinks(reporter: Any) -> Any:
    """Where progress goes besides the log's JSON lines: the ValidationRun's status,
    and a bar with ETA on stderr when it is a terminal."""
    from kubetrade.validation.progress import TerminalBar

    sinks: list[Any] = []
    if reporter is not None:
        sinks.append(lambda pct, eta, text: reporter.progress(text))
    if sys.stderr.isatty():
        sinks.append(TerminalBar(sys.stderr))
    if not sinks:
        return None
    return lambda pct, eta, text: [sink(pct, eta, text) for sink in sinks]


def run(args: argparse.Namespace) -> int:
    from kubetrade.logs import configure_logging

    # logs to stderr: stdout carries the summary
    configure_logging(stream=sys.stderr)
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if main_thread else None
    try:
        code, _ = execute(args)
    except BaseException as exc:
        if termination_in(exc) is None:
            return _refused(exc)
        print("kubetrade validate: terminated before the run completed", file=sys.stderr)
        return 128 + signal.SIGTERM
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    return code


def _refused(exc: BaseException) -> int:
    """The exit code and one line for a run that could not complete: bad input or a
    Kubernetes API answer; anything else is re-raised."""
    from kubernetes.client.exceptions import ApiException

    if isinstance(exc, ValueError):
        print(f"kubetrade validate: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(exc, ApiException):
        print(f"kubetrade validate: Kubernetes API: {exc.status} {exc.reason}", file=sys.stderr)
        return EXIT_ERROR
    raise exc


class Terminated(BaseException):
    """SIGTERM (pod deletion, Job deadline): unwinds so the ValidationRun is marked
    Failed with the reason instead of being left Running forever."""


def _terminated(signum: int, frame: Any) -> None:
    raise Terminated("terminated by SIGTERM")


def termination_in(exc: BaseException) -> Terminated | None:
    """The Terminated behind `exc`, if any: the handler raises wherever the main
    thread is, and library code can wrap it (a SIGTERM during `import ccxt` comes out
    as RuntimeError from a class body's ``__set_name__``, its cause the Terminated)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, Terminated):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None
