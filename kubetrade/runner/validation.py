"""The runbook's validation: paper-trade a strategy, then decide GO or NO-GO.

Two ways to feed it, one code path to judge it: ``--replay FILE`` pushes recorded
candles through the engine and paper broker at full speed (ENGINE's ``run_replay``),
and ``--duration`` trades forward on the exchange's public candles as they close,
through the very same engine and broker. Either way the result is one report: the
decision, each criterion with its shortfall, the metrics, every trade, the equity
curve, and exactly what was run (strategy, parameters, data range, code version), so
a GO can be audited and a NO-GO explained.

The report goes to a JSON file, to stdout as a summary, to Redis (keys.validation_latest
plus an alert the notifier sends to Telegram) and, in a cluster, to a ConfigMap named in
the ValidationRun's status together with the decision and the progress.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from kubetrade import __version__
from kubetrade.domain.clock import Clock
from kubetrade.domain.gonogo import Criteria, GoNoGo, evaluate
from kubetrade.domain.models import ClosedTrade

log = logging.getLogger("kubetrade.validation")

REPORT_KIND = "kubetrade.io/validation-report"
REPORT_VERSION = 1
METRIC_FIELDS = (
    "trades",
    "win_rate",
    "sharpe",
    "max_drawdown",
    "total_return",
    "profit_factor",
    "expectancy",
)


# -- what was run -----------------------------------------------------------------------


def code_version() -> str:
    """Package version plus the git commit when run from a checkout.

    Images set KUBETRADE_CODE_VERSION at build time (no .git inside); a checkout asks
    git, so a report can always be traced to the code that produced it.
    """
    env = os.environ.get("KUBETRADE_CODE_VERSION")
    if env:
        return env
    git = shutil.which("git")
    if git is None:
        return __version__
    root = Path(__file__).resolve().parents[2]
    try:
        sha = subprocess.run(  # noqa: S603 (fixed argv, no shell)
            [git, "-C", str(root), "rev-parse", "--short=12", "HEAD"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603
            [git, "-C", str(root), "status", "--porcelain", "--untracked-files=no", "kubetrade"],
            capture_output=True, text=True, timeout=5, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return __version__
    return f"{__version__}+g{sha}{'.dirty' if dirty else ''}" if sha else __version__


def iso(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat().replace("+00:00", "Z")


# -- the report -------------------------------------------------------------------------


def _number(value: Any) -> int | float | None:
    """Metrics as JSON numbers; non-finite values (an infinite profit factor when there
    were no losing trades, an undefined Sharpe) become null rather than invalid JSON."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    as_float = float(value)
    if as_float != as_float or as_float in (float("inf"), float("-inf")):
        return None
    return as_float


def metrics_to_dict(metrics: Any) -> dict[str, int | float | None]:
    """The report's ``metrics``: ratios as fractions, counts as integers."""
    out: dict[str, int | float | None] = {}
    for name in METRIC_FIELDS:
        if hasattr(metrics, name):
            out[name] = _number(getattr(metrics, name))
        elif isinstance(metrics, Mapping) and name in metrics:
            out[name] = _number(metrics[name])
    return out


def trade_to_dict(t: ClosedTrade) -> dict[str, Any]:
    """A round trip as the report lists it: money as exact decimal strings."""
    return {
        "trade_id": t.trade_id,
        "symbol": t.symbol,
        "entry_time": iso(t.entry_ms),
        "entry_ms": t.entry_ms,
        "entry_price": str(t.entry_price),
        "exit_time": iso(t.exit_ms),
        "exit_ms": t.exit_ms,
        "exit_price": str(t.exit_price),
        "quantity": str(t.quantity),
        "fees": str(t.fees),
        "pnl": str(t.pnl),
        "exit_reason": t.exit_reason,
    }


def equity_to_list(curve: Sequence[tuple[int, Decimal]]) -> list[dict[str, Any]]:
    return [{"ts_ms": ts, "time": iso(ts), "equity": str(eq)} for ts, eq in curve]


@dataclass
class RunInfo:
    """What was run: enough to reproduce the validation exactly."""

    strategy: str
    algorithm: str
    parameters: dict[str, Any]
    symbols: list[str]
    timeframe: str
    mode: str
    """``replay`` or ``forward``."""
    source: str
    """The replayed file, or ``exchange:<url or binance>`` for forward runs."""
    namespace: str = ""
    starting_cash: Decimal = Decimal(10000)
    risk: dict[str, Any] = field(default_factory=dict)
    duration_seconds: int | None = None
    validation_run: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "namespace": self.namespace,
            "algorithm": self.algorithm,
            "parameters": self.parameters,
            "symbols": self.symbols,
            "timeframe": self.timeframe,
            "mode": self.mode,
            "source": self.source,
            "starting_cash": str(self.starting_cash),
            "risk": self.risk,
            "duration_seconds": self.duration_seconds,
            "validation_run": self.validation_run,
            "code_version": code_version(),
        }


def build_report(
    run: RunInfo,
    criteria: Criteria,
    metrics: Any,
    trades: Sequence[ClosedTrade],
    equity_curve: Sequence[tuple[int, Decimal]],
    data_start_ms: int | None,
    data_end_ms: int | None,
    candles: int,
    started_ms: int,
    finished_ms: int,
) -> dict[str, Any]:
    verdict: GoNoGo = evaluate(metrics, criteria)
    run_dict = run.to_dict()
    run_dict["data"] = {
        "start_ms": data_start_ms,
        "end_ms": data_end_ms,
        "start": iso(data_start_ms) if data_start_ms is not None else None,
        "end": iso(data_end_ms) if data_end_ms is not None else None,
        "candles": candles,
    }
    run_dict["criteria"] = criteria.to_dict()
    return {
        "kind": REPORT_KIND,
        "version": REPORT_VERSION,
        "decision": verdict.decision,
        "failed_criteria": [r.explain() for r in verdict.failed],
        "criteria": verdict.to_dict(),
        "metrics": metrics_to_dict(metrics),
        "trades": [trade_to_dict(t) for t in trades],
        "equity_curve": equity_to_list(equity_curve),
        "run": run_dict,
        "started_ms": started_ms,
        "finished_ms": finished_ms,
        "started": iso(started_ms),
        "finished": iso(finished_ms),
    }


def report_filename(ts_ms: int) -> str:
    stamp = datetime.fromtimestamp(ts_ms / 1000, tz=UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"validation_report_{stamp}.json"


def write_report(report: Mapping[str, Any], report_dir: str | Path, ts_ms: int) -> Path:
    """Write ``validation_report_<timestamp>.json`` atomically, never over another report.

    Atomic (temp file + rename) because pre-flight reads these files: a half-written
    report must not be parsed as a missing or failed validation.
    """
    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / report_filename(ts_ms)
    n = 1
    while path.exists():
        path = directory / report_filename(ts_ms).replace(".json", f"-{n}.json")
        n += 1
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_reports(report_dir: str | Path) -> list[dict[str, Any]]:
    """Every readable report in a directory, each with ``_source`` set to its path.

    Unreadable files are skipped (logged): pre-flight must not crash on a stray file.
    """
    directory = Path(report_dir)
    if not directory.is_dir():
        return []
    reports: list[dict[str, Any]] = []
    for path in sorted(directory.glob("validation_report_*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("skipping unreadable validation report %s: %s", path, exc)
            continue
        if isinstance(data, dict) and "decision" in data:
            data["_source"] = str(path)
            reports.append(data)
    return reports


def _pct(value: float | int | None) -> str:
    return "n/a" if value is None else f"{float(value) * 100:.2f}%"


def _fix(value: float | int | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{float(value):.{digits}f}"


def format_summary(report: Mapping[str, Any], location: str = "") -> str:
    """The stdout summary: verdict first, then why, then what was run."""
    run = report["run"]
    data = run.get("data", {})
    m = report["metrics"]
    lines = [
        f"Validation of {run['strategy']} ({run['algorithm']} {json.dumps(run['parameters'])})"
        f": {report['decision']}",
        f"  data: {run['mode']} {run['source']} {data.get('start')} .. {data.get('end')} "
        f"({data.get('candles')} candles), code {run['code_version']}",
        f"  trades {m.get('trades')}, win rate {_pct(m.get('win_rate'))}, "
        f"Sharpe {_fix(m.get('sharpe'))}, max drawdown {_pct(m.get('max_drawdown'))}, "
        f"total return {_pct(m.get('total_return'))}, "
        f"profit factor {_fix(m.get('profit_factor'), 2)}",
        "  criteria:",
    ]
    for c in report["criteria"]:
        lines.append(f"    {_explain(c)}")
    if location:
        lines.append(f"  report: {location}")
    return "\n".join(lines)


def _explain(c: Mapping[str, Any]) -> str:
    key = c["key"]

    def show(v: Any) -> str:
        if v is None:
            return "undefined"
        if key in ("min_win_rate", "max_drawdown"):
            return _pct(v)
        if key == "min_trades":
            return str(v)
        return _fix(v)

    text = (
        f"{'PASS' if c['passed'] else 'FAIL'} {c['name']}: {show(c['actual'])} "
        f"(needs {c['comparison']} {show(c['threshold'])})"
    )
    if not c["passed"] and c.get("shortfall") is not None:
        text += f", short by {show(c['shortfall'])}"
    return text


def latest_summary(report: Mapping[str, Any], location: str) -> dict[str, Any]:
    """What keys.validation_latest holds: the verdict and where the full report is,
    without the (possibly large) trade list and equity curve."""
    return {
        "decision": report["decision"],
        "strategy": report["run"]["strategy"],
        "namespace": report["run"].get("namespace", ""),
        "criteria": report["criteria"],
        "failed_criteria": report.get("failed_criteria", []),
        "metrics": report["metrics"],
        "run": {k: v for k, v in report["run"].items()},
        "finished_ms": report["finished_ms"],
        "report": location,
    }


# -- progress ---------------------------------------------------------------------------


class Progress:
    """Percentage and ETA for the log (and the ValidationRun status).

    ETA uses a *wall* clock even when the simulation runs on a manual one: a replay's
    simulated time says nothing about how long the CPU still needs.
    """

    def __init__(
        self,
        total: float,
        wall: Clock,
        on_update: Callable[[float, float | None, str], None] | None = None,
        step_pct: float = 5.0,
        min_interval_s: float = 10.0,
    ) -> None:
        self.total = max(float(total), 1e-9)
        self.wall = wall
        self.on_update = on_update
        self.step_pct = step_pct
        self.min_interval_ms = int(min_interval_s * 1000)
        self.started_ms = wall.now_ms()
        self._last_pct = 0.0
        self._last_bucket = 0
        self._last_ms = self.started_ms
        self.pct = 0.0
        self.eta_s: float | None = None

    def text(self) -> str:
        eta = "unknown" if self.eta_s is None else _duration_text(self.eta_s)
        return f"{self.pct:.0f}% (ETA {eta})"

    def update_of(self, done: int, total: int) -> None:
        """``update`` for callers that learn the total as they go (``run_replay``)."""
        self.total = max(float(total), 1e-9)
        self.update(done)

    def update(self, done: float, force: bool = False) -> None:
        now = self.wall.now_ms()
        self.pct = max(0.0, min(100.0, done / self.total * 100))
        elapsed_s = (now - self.started_ms) / 1000
        self.eta_s = (
            elapsed_s * (100 - self.pct) / self.pct if self.pct > 0 and elapsed_s > 0 else None
        )
        if self.pct >= 100:
            self.eta_s = 0.0
        bucket = int(self.pct // self.step_pct)
        due = (
            force
            or bucket > self._last_bucket
            or (now - self._last_ms >= self.min_interval_ms and self.pct > self._last_pct)
        )
        if not due:
            return
        self._last_bucket = bucket
        self._last_pct = self.pct
        self._last_ms = now
        log.info("validation progress %s", self.text(),
                 extra={"percent": round(self.pct, 1), "eta_s": self.eta_s})
        if self.on_update is not None:
            self.on_update(self.pct, self.eta_s, self.text())


def _duration_text(seconds: float) -> str:
    s = round(seconds)
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{sec:02d}s"
    return f"{sec}s"


def parse_duration(text: str) -> int:
    """``48h``, ``90m``, ``1d12h``, ``30s`` -> seconds (the ValidationRun's pattern)."""
    import re

    value = text.strip()
    parts = re.findall(r"(\d+)([smhd])", value)
    if not parts or "".join(n + u for n, u in parts) != value:
        raise ValueError(f"duration: {text!r} is not like 48h, 90m, 1d12h or 30s")
    unit = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    seconds = sum(int(n) * unit[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"duration: {text!r} must be longer than 0")
    return seconds


# -- the cluster ------------------------------------------------------------------------


def kube_api_client(kubeconfig: str | None = None) -> Any:
    """An ApiClient: in-cluster service account in a pod, else the kubeconfig
    (``--kubeconfig``, then KUBECONFIG, then ~/.kube/config)."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config

    if kubeconfig is None and os.environ.get("KUBERNETES_SERVICE_HOST"):
        k8s_config.load_incluster_config()  # type: ignore[no-untyped-call]
        return k8s.ApiClient()
    return k8s_config.new_client_from_config(config_file=kubeconfig)  # type: ignore[no-untyped-call]


def _custom(api_client: Any) -> Any:
    from kubernetes import client as k8s

    return k8s.CustomObjectsApi(api_client)


def read_cluster_object(api_client: Any, plural: str, namespace: str, name: str) -> dict[str, Any]:
    from kubetrade.resources import GROUP, VERSION

    obj: dict[str, Any] = _custom(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, plural, name
    )
    return obj


def list_cluster_objects(api_client: Any, plural: str, namespace: str) -> list[dict[str, Any]]:
    from kubetrade.resources import GROUP, VERSION

    listing = _custom(api_client).list_namespaced_custom_object(GROUP, VERSION, namespace, plural)
    items: list[dict[str, Any]] = listing.get("items", [])
    return items


def cluster_strategy(api_client: Any, namespace: str, name: str) -> Any:
    """The Strategy CR (validated like a file, so errors read the same)."""
    from kubetrade.resources import parse_manifest

    doc = read_cluster_object(api_client, "strategies", namespace, name)
    doc.pop("status", None)
    _strip_server_fields(doc)
    return parse_manifest(doc, f"strategies/{name} in namespace {namespace}")


def cluster_risk_policy(api_client: Any, namespace: str, name: str) -> Any | None:
    """The RiskPolicy CR, or None when it does not exist (defaults then apply)."""
    from kubernetes.client.exceptions import ApiException

    from kubetrade.resources import parse_manifest

    try:
        doc = read_cluster_object(api_client, "riskpolicies", namespace, name)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise
    doc.pop("status", None)
    _strip_server_fields(doc)
    return parse_manifest(doc, f"riskpolicies/{name} in namespace {namespace}")


def _strip_server_fields(doc: dict[str, Any]) -> None:
    meta = doc.get("metadata", {})
    for key in ("managedFields", "creationTimestamp", "selfLink", "finalizers",
                "ownerReferences", "deletionTimestamp", "deletionGracePeriodSeconds"):
        meta.pop(key, None)


def _report_run_from_config_map(api_client: Any, namespace: str, name: str) -> dict[str, Any]:
    """The ``run`` section of a report ConfigMap, or {} when it cannot be read."""
    from kubernetes import client as k8s

    try:
        cm = k8s.CoreV1Api(api_client).read_namespaced_config_map(name, namespace)
        run = json.loads((cm.data or {}).get("report.json", "{}")).get("run", {})
    except Exception as exc:  # the decision in the status still counts without it
        log.warning("could not read report ConfigMap %s/%s: %s", namespace, name, exc)
        return {}
    return run if isinstance(run, dict) else {}


def cluster_validation_reports(api_client: Any, namespace: str) -> list[dict[str, Any]]:
    """Finished ValidationRuns as report-like dicts (decision, strategy, time) for
    pre-flight's Paper Validation check."""
    out: list[dict[str, Any]] = []
    for item in list_cluster_objects(api_client, "validationruns", namespace):
        status = item.get("status") or {}
        decision = status.get("decision")
        if decision not in ("GO", "NO-GO"):
            continue
        finished = status.get("completionTime") or item["metadata"].get("creationTimestamp")
        ts = 0
        if isinstance(finished, str):
            try:
                ts = int(datetime.fromisoformat(finished.replace("Z", "+00:00")).timestamp() * 1000)
            except ValueError:
                ts = 0
        run: dict[str, Any] = {"strategy": item.get("spec", {}).get("strategyRef", "")}
        cm_name = status.get("reportConfigMap")
        if cm_name:
            recorded = _report_run_from_config_map(api_client, namespace, str(cm_name))
            if recorded.get("strategy") == run["strategy"]:
                run = recorded
        out.append({
            "decision": decision,
            "run": run,
            "finished_ms": ts,
            "criteria": [
                {"name": text, "passed": False} for text in status.get("failedCriteria", [])
            ],
            "_source": f"validationruns/{item['metadata']['name']}",
        })
    return out


# -- outputs: cluster, Redis ------------------------------------------------------------

CONFIGMAP_LIMIT = 900_000
"""Bytes of report JSON a ConfigMap may hold here: the API server's limit is 1 MiB for
the whole object, and the summary and metadata need room too."""


def report_config_map_name(validation_run: str) -> str:
    return f"{validation_run}-report"[:253]


def fit_for_config_map(report: Mapping[str, Any], limit: int = CONFIGMAP_LIMIT) -> str:
    """The report's JSON, thinned only when it would not fit in a ConfigMap.

    A long replay's equity curve can exceed 1 MiB; the curve is sampled (first and last
    points kept, ``equity_curve_sampled_every`` says how) before any trade is dropped,
    because trades are what a reviewer audits. The full report stays in the file.
    """
    text = json.dumps(report, separators=(",", ":"))
    if len(text.encode()) <= limit:
        return text
    thin = dict(report)
    curve = list(report.get("equity_curve", []))
    every = 2
    while len(curve) > 2:
        sampled = curve[::every]
        if sampled[-1] is not curve[-1]:
            sampled.append(curve[-1])
        thin["equity_curve"] = sampled
        thin["equity_curve_sampled_every"] = every
        text = json.dumps(thin, separators=(",", ":"))
        if len(text.encode()) <= limit:
            return text
        every *= 2
        if every > len(curve):
            break
    trades = list(report.get("trades", []))
    thin["trades_truncated_from"] = len(trades)
    while trades:
        trades = trades[: len(trades) // 2]
        thin["trades"] = trades
        text = json.dumps(thin, separators=(",", ":"))
        if len(text.encode()) <= limit:
            return text
    thin["trades"] = []
    return json.dumps(thin, separators=(",", ":"))


class ClusterReporter:
    """Writes progress, decision and the report ConfigMap for one ValidationRun.

    Status patches go to the status subresource with a merge patch, touching only the
    fields validation owns (decision, progress, reportConfigMap, failedCriteria, phase)
    so the operator's own fields (job, conditions, times) are left alone.
    """

    def __init__(self, api_client: Any, namespace: str, name: str) -> None:
        self.api = api_client
        self.namespace = namespace
        self.name = name
        self._uid: str | None = None

    def _custom(self) -> Any:
        return _custom(self.api)

    def get(self) -> dict[str, Any]:
        obj = read_cluster_object(self.api, "validationruns", self.namespace, self.name)
        self._uid = obj.get("metadata", {}).get("uid")
        return obj

    def patch_status(self, status: dict[str, Any]) -> None:
        from kubetrade.resources import GROUP, VERSION

        self._custom().patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, "validationruns", self.name, {"status": status},
            _content_type="application/merge-patch+json",
        )

    def progress(self, text: str) -> None:
        """Progress is best effort: a failed patch is logged, never fatal."""
        try:
            self.patch_status({"progress": text, "phase": "Running"})
        except Exception as exc:
            log.warning("could not patch ValidationRun %s/%s progress: %s",
                        self.namespace, self.name, exc)

    def write_config_map(self, report: Mapping[str, Any], summary: str) -> str:
        from kubernetes import client as k8s
        from kubernetes.client.exceptions import ApiException

        name = report_config_map_name(self.name)
        if self._uid is None:
            self.get()
        owner = []
        if self._uid:
            from kubetrade.resources import API_VERSION

            owner = [k8s.V1OwnerReference(
                api_version=API_VERSION, kind="ValidationRun", name=self.name, uid=self._uid,
                controller=False, block_owner_deletion=False,
            )]
        body = k8s.V1ConfigMap(
            metadata=k8s.V1ObjectMeta(
                name=name,
                namespace=self.namespace,
                labels={
                    "app.kubernetes.io/name": "kubetrade",
                    "app.kubernetes.io/component": "validation-report",
                    "kubetrade.io/validation-run": self.name,
                    "kubetrade.io/decision": str(report["decision"]),
                },
                owner_references=owner or None,
            ),
            data={"report.json": fit_for_config_map(report), "summary.txt": summary},
        )
        core = k8s.CoreV1Api(self.api)
        try:
            core.create_namespaced_config_map(self.namespace, body)
        except ApiException as exc:
            if exc.status != 409:
                raise
            core.replace_namespaced_config_map(name, self.namespace, body)
        return name

    def finish(self, report: Mapping[str, Any], summary: str) -> str:
        """ConfigMap first, then the status naming it, so a reader that sees the
        decision always finds the report."""
        name = self.write_config_map(report, summary)
        failed = [str(x) for x in report.get("failed_criteria", [])]
        self.patch_status({
            "decision": report["decision"],
            "reportConfigMap": name,
            "failedCriteria": failed,
            "progress": "100%",
            "phase": "Succeeded",
            "completionTime": iso(int(report["finished_ms"]))[:19] + "Z",
        })
        return name

    def fail(self, message: str) -> None:
        try:
            self.patch_status({"phase": "Failed", "progress": f"failed: {message}"[:1024]})
        except Exception as exc:
            log.warning("could not mark ValidationRun %s/%s failed: %s",
                        self.namespace, self.name, exc)


async def publish_report(
    redis: Any, keys: Any, report: Mapping[str, Any], location: str, summary: str
) -> None:
    """keys.validation_latest, plus an alert the notifier sends (to Telegram) and an
    audit entry: the decision is the kind of thing someone must be able to look up."""
    from kubetrade.state.alerts import Alert, AlertKind, Severity, raise_alert
    from kubetrade.state.audit import AuditEntry, write_audit

    latest = latest_summary(report, location)
    await redis.set(keys.validation_latest, json.dumps(latest, sort_keys=True))
    go = report["decision"] == "GO"
    strategy = str(report["run"]["strategy"])
    await raise_alert(redis, keys, Alert(
        kind=AlertKind.VALIDATION_RESULT,
        severity=Severity.INFO if go else Severity.WARNING,
        title=f"Validation {report['decision']}: {strategy}",
        text=summary,
        ts_ms=int(report["finished_ms"]),
        strategy=strategy,
        data={"decision": report["decision"], "metrics": report["metrics"],
              "failed_criteria": report.get("failed_criteria", []), "report": location},
    ))
    await write_audit(redis, keys, AuditEntry(
        ts_ms=int(report["finished_ms"]),
        actor="validation",
        action="validation_result",
        strategy=strategy,
        detail={"decision": report["decision"], "report": location,
                "failed_criteria": report.get("failed_criteria", [])},
    ))


# -- running ----------------------------------------------------------------------------


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


@dataclass
class RunOutcome:
    trades: list[ClosedTrade]
    equity_curve: list[tuple[int, Decimal]]
    candles: int
    data_start_ms: int | None
    data_end_ms: int | None
    open_positions: int
    rejected_orders: int


def _engine_and_broker(plan: ValidationPlan, markets: dict[str, Any]) -> tuple[Any, Any]:
    """A fresh engine and paper broker, built exactly as a paper runner builds them."""
    from kubetrade.domain.algorithms import create_algorithm
    from kubetrade.domain.engine import TradingEngine
    from kubetrade.exchange.paper import PaperBroker
    from kubetrade.runner.market import timeframe_ms

    spec = plan.strategy.spec
    quote = next(iter(markets.values())).quote
    cash = Decimal(spec.initial_capital)
    engine = TradingEngine(
        plan.strategy.metadata.name,
        create_algorithm(spec.algorithm, spec.parameters),
        plan.limits,
        markets,
        cash,
        quote,
        timeframe_ms=timeframe_ms(spec.timeframe),
    )
    broker = PaperBroker(markets, {quote: cash})
    return engine, broker


def run_info(plan: ValidationPlan, symbols: list[str]) -> RunInfo:
    spec = plan.strategy.spec
    return RunInfo(
        strategy=plan.strategy.metadata.name,
        namespace=plan.namespace,
        algorithm=spec.algorithm,
        parameters=spec.validated_parameters(),
        symbols=symbols,
        timeframe=spec.timeframe,
        mode=plan.mode,
        source=plan.source or (str(plan.replay_path) if plan.replay_path else "exchange"),
        starting_cash=Decimal(spec.initial_capital),
        risk=plan.limits.model_dump(mode="json", by_alias=True),
        duration_seconds=plan.duration_s if plan.mode == "forward" else None,
        validation_run=plan.validation_run,
    )


def replay(
    plan: ValidationPlan, progress: Callable[[int, int], None] | None = None
) -> RunOutcome:
    """Recorded candles through the engine and paper broker as fast as the CPU allows."""
    from kubetrade.domain.clock import ManualClock
    from kubetrade.exchange.paper import default_market
    from kubetrade.exchange.replay import load_candles, run_replay

    if plan.replay_path is None:
        raise ValueError("replay: no candle file given")
    candles = load_candles(plan.replay_path)
    if not candles:
        raise ValueError(f"replay: {plan.replay_path} holds no candles")
    symbol = plan.symbol or plan.strategy.spec.symbols[0]
    engine, broker = _engine_and_broker(plan, {symbol: default_market(symbol)})
    clock = ManualClock(candles[0].ts_ms)
    every = max(1, len(candles) // 100)
    result = run_replay(
        engine, broker, candles, clock,
        on_progress=progress,
        symbol=symbol, progress_every=every,
    )
    return RunOutcome(
        trades=list(result.trades),
        equity_curve=list(result.equity_curve),
        candles=result.candles,
        data_start_ms=candles[0].ts_ms,
        data_end_ms=result.equity_curve[-1][0] if result.equity_curve else candles[-1].ts_ms,
        open_positions=len(engine.positions),
        rejected_orders=result.rejected,
    )


async def forward(
    plan: ValidationPlan,
    exchange: Any,
    clock: Clock,
    progress: Callable[[float], None] | None = None,
    settle_s: float = 2.0,
) -> RunOutcome:
    """Paper-trade forward for ``plan.duration_s`` on the exchange's closed candles.

    Each newly closed candle goes through ``run_replay`` (the replay loop, one candle
    at a time), so forward and replay validations execute identical code. Indicators
    are warmed up on the candles that closed before the start, without trading on
    them, so the run can trade from its first minute. Exchange errors while polling are
    logged and retried at the next poll: a 48-hour run must survive a blip.
    """
    from kubetrade.domain.clock import ManualClock
    from kubetrade.exchange.base import ExchangeError
    from kubetrade.exchange.paper import default_market
    from kubetrade.exchange.replay import run_replay
    from kubetrade.runner.market import timeframe_ms

    spec = plan.strategy.spec
    symbols: list[str] = list(spec.symbols)
    step = timeframe_ms(spec.timeframe)
    try:
        known = await exchange.load_markets()
    except ExchangeError as exc:
        raise ValueError(f"forward validation: cannot load the exchange's markets: {exc}") from exc
    missing = [s for s in symbols if s not in known]
    if missing:
        raise ValueError(f"symbols: not traded on the exchange: {', '.join(missing)}")
    markets = {s: known.get(s) or default_market(s) for s in symbols}
    engine, broker = _engine_and_broker(plan, markets)
    start_ms = clock.now_ms()
    end_ms = start_ms + plan.duration_s * 1000

    # warm up on history: indicators only, no orders
    cursor: dict[str, int] = {}
    need = engine.strategy.warmup + 1
    for s in symbols:
        history: list[Any] = []
        for attempt in range(3):
            try:
                history = await exchange.fetch_candles(
                    s, spec.timeframe, since_ms=start_ms - (need + 1) * step, limit=need + 2
                )
                break
            except ExchangeError as exc:
                # without warm-up the strategy just starts signalling later
                log.warning("forward validation: warm-up candles for %s failed (%d/3): %s",
                            s, attempt + 1, exc)
                await clock.sleep(2.0)
        history = [c for c in history if c.ts_ms + step <= start_ms]
        for c in history:
            engine.strategy.update(s, float(c.close))
        cursor[s] = history[-1].ts_ms if history else (start_ms // step) * step - step

    trades: list[ClosedTrade] = []
    curve: list[tuple[int, Decimal]] = [(start_ms, engine.equity)]
    candles = 0
    rejected = 0
    first_ms: int | None = None
    while True:
        batch: list[tuple[int, str, Any]] = []
        for s in symbols:
            try:
                fresh = await exchange.fetch_candles(
                    s, spec.timeframe, since_ms=cursor[s] + step, limit=1000
                )
            except ExchangeError as exc:
                log.warning("forward validation: fetching %s candles failed, retrying: %s",
                            s, exc)
                continue
            for c in fresh:
                if c.ts_ms > cursor[s] and c.ts_ms + step <= end_ms:
                    batch.append((c.ts_ms, s, c))
        batch.sort(key=lambda x: (x[0], x[1]))
        for ts, s, c in batch:
            if ts <= cursor[s]:
                continue
            cursor[s] = ts
            # A clock per candle: one symbol's candles may arrive a poll late, after a
            # later candle of another symbol was traded, and a shared simulated clock
            # cannot go back (it raised and ended the run).
            result = run_replay(engine, broker, [c], ManualClock(ts), symbol=s)
            trades.extend(result.trades)
            rejected += result.rejected
            candles += 1
            first_ms = ts if first_ms is None else min(first_ms, ts)
            point = result.equity_curve[-1]
            if curve and curve[-1][0] >= point[0]:
                # late candle: the curve stays in time order; its latest point takes
                # the equity as it is now
                curve[-1] = (curve[-1][0], point[1])
            else:
                curve.append(point)
        now = clock.now_ms()
        if progress is not None:
            progress(min(now, end_ms) - start_ms)
        done = all(cursor[s] + 2 * step > end_ms for s in symbols)
        if done or now >= end_ms + 10 * step:
            break
        next_close = min(cursor[s] + 2 * step for s in symbols)
        wait_s = max(1.0, (next_close - now) / 1000 + settle_s)
        await clock.sleep(wait_s)
    if progress is not None:
        progress(end_ms - start_ms)  # no candle can close inside the window any more
    return RunOutcome(
        trades=trades,
        equity_curve=curve,
        candles=candles,
        data_start_ms=first_ms,
        data_end_ms=curve[-1][0] if curve else None,
        open_positions=len(engine.positions),
        rejected_orders=rejected,
    )


def finish_report(
    plan: ValidationPlan, outcome: RunOutcome, symbols: list[str], started_ms: int,
    finished_ms: int,
) -> dict[str, Any]:
    from kubetrade.domain.metrics import compute_metrics

    metrics = compute_metrics(outcome.trades, outcome.equity_curve)
    report = build_report(
        run_info(plan, symbols), plan.criteria, metrics, outcome.trades, outcome.equity_curve,
        outcome.data_start_ms, outcome.data_end_ms, outcome.candles, started_ms, finished_ms,
    )
    report["open_positions_at_end"] = outcome.open_positions
    report["rejected_orders"] = outcome.rejected_orders
    return report
