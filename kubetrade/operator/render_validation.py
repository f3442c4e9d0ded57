"""The Job of a ValidationRun, as a pure function of the run (and the Strategy's market).

- one run: a Job of one pod running ``kubetrade validate --validation-run NAME``; it
  writes the report ConfigMap and the run's decision itself.
- ``spec.sweep``: ONE Indexed Job (``completionMode: Indexed``), ``completions`` = the
  number of slices, ``parallelism`` from the spec; pod ``$JOB_COMPLETION_INDEX`` runs
  slice i of the combinations (``--sweep-slices N``) and reports it in a ConfigMap the
  operator gathers (:mod:`kubetrade.operator.sweep_gather`).
- ``replay: store``: the candle store is a volume at :data:`DATADIR`, the chart's
  candle-data claim (``settings.candle_claim``) or else an emptyDir; with
  ``storeRange.download`` an init container runs ``kubetrade data download`` of the
  range first (the Strategy's first symbol and timeframe: the series a replay reads).
"""

from __future__ import annotations

from decimal import Decimal

from kubetrade.domain.sweeps import slice_count
from kubetrade.operator.render import (
    CANDLE_DATADIR,
    CANDLE_VOLUME,
    JOB_LABEL,
    VALIDATION_LABEL,
    Manifest,
    _container,
    job_failure_policy,
    job_pod_template,
    label_value,
    labels,
    owner_reference,
    validation_job_name,
)
from kubetrade.operator.settings import OperatorSettings
from kubetrade.resources import ValidationRun
from kubetrade.resources.common import as_number
from kubetrade.resources.validationrun_sweep import ParameterSweep, StoreRange

#: Where a Job mounts the candle store (``--datadir``), as the runners do.
DATADIR = CANDLE_DATADIR

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_seconds(text: str) -> int:
    """``1d12h`` -> 129600 (the ValidationRun CRD guarantees the shape)."""
    total, number = 0, ""
    for char in text:
        if char.isdigit():
            number += char
        else:
            total += int(number) * _DURATION_UNITS[char]
            number = ""
    return total


def _number_text(value: Decimal) -> str:
    """A grid value as ``--sweep`` parses it back: ``5`` -> "5", ``1.5`` -> "1.5"."""
    return str(as_number(value))


def sweep_args(sweep: ParameterSweep, slices: int) -> list[str]:
    """The ``kubetrade validate`` flags of one slice pod of ``sweep`` in ``slices``."""
    args: list[str] = []
    for name, values in sorted(sweep.parameters.items()):
        args += ["--sweep", f"{name}={','.join(_number_text(v) for v in values)}"]
    if sweep.samples is not None:
        args += ["--samples", str(sweep.samples)]
    args += ["--seed", str(sweep.seed),
             "--in-sample", _number_text(Decimal(sweep.in_sample_pct) / 100),
             "--jobs", "1", "--sweep-slices", str(slices), "--sweep-top", str(sweep.top)]
    return args


def store_args(store: StoreRange | None) -> list[str]:
    """``--replay store`` and its range (``--datadir`` the mounted store)."""
    args = ["--replay", "store", "--datadir", DATADIR]
    if store is not None:
        args += ["--since", store.since]
        if store.until:
            args += ["--until", store.until]
    return args


def validate_args(run: ValidationRun, namespace: str, slices: int | None) -> list[str]:
    """The command of the validation container (``slices``: a sweep's completions)."""
    spec = run.spec
    args = ["validate", "--strategy", spec.strategy_ref, "--namespace", namespace,
            "--validation-run", run.name]
    if spec.replay == "store":
        args += store_args(spec.store_range)
    elif spec.replay:
        args += ["--replay", spec.replay]
    else:
        args += ["--duration", spec.duration]
    if spec.sweep is not None and slices is not None:
        args += sweep_args(spec.sweep, slices)
    return args


def download_container(
    store: StoreRange, market: tuple[str, str], settings: OperatorSettings
) -> Manifest:
    """The init container filling the store with ``market`` (symbol, timeframe) over the
    range: resumable, so a rerun fetches only what is missing."""
    symbol, timeframe = market
    args = ["data", "download", "--symbols", symbol, "--timeframes", timeframe,
            "--since", store.since, "--datadir", DATADIR, "--progress", "json"]
    if store.until:
        args += ["--until", store.until]
    container = _container("download", args, False, None, settings, settings.job_resources)
    container["volumeMounts"] = [*container["volumeMounts"],
                                 {"name": CANDLE_VOLUME, "mountPath": DATADIR}]
    return container


def candle_volume(settings: OperatorSettings) -> Manifest:
    """The chart's candle-data claim, or an emptyDir when the chart has none."""
    if settings.candle_claim:
        return {"name": CANDLE_VOLUME,
                "persistentVolumeClaim": {"claimName": settings.candle_claim}}
    return {"name": CANDLE_VOLUME, "emptyDir": {"sizeLimit": "2Gi"}}


def slices_of(sweep: ParameterSweep) -> int:
    """The sweep's slices (its Job's completions)."""
    return slice_count(sweep.combinations(), sweep.parallelism, sweep.slices)


def _deadline(run: ValidationRun) -> int:
    spec = run.spec
    if spec.active_deadline_seconds:
        return spec.active_deadline_seconds
    if spec.sweep is not None:
        return 6 * 3600
    return 3600 if spec.replay else duration_seconds(spec.duration) + 3600


def validation_job(
    run: ValidationRun, uid: str, settings: OperatorSettings,
    market: tuple[str, str] | None = None,
) -> Manifest:
    """The Job of ``run`` (see the module's text). ``market`` (the Strategy's first
    symbol and timeframe) is needed only for ``storeRange.download``; ValueError when
    it is missing then."""
    namespace = run.metadata.namespace or settings.namespace
    spec = run.spec
    sweep = spec.sweep
    slices = slices_of(sweep) if sweep is not None else None
    # Validation trades paper only: market data, never the exchange keys.
    container = _container("validate", validate_args(run, namespace, slices), True, None,
                           settings, settings.job_resources)
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {"sizeLimit": "256Mi"}}]
    pod: Manifest = {}
    if spec.replay == "store":
        volumes.append(candle_volume(settings))
        container["volumeMounts"] = [*container["volumeMounts"], {
            "name": CANDLE_VOLUME, "mountPath": DATADIR, "readOnly": True}]
        if spec.store_range is not None and spec.store_range.download:
            if market is None:
                raise ValueError("storeRange.download: the Strategy's symbol and timeframe "
                                 "are needed to render the download step")
            pod["initContainers"] = [download_container(spec.store_range, market, settings)]
    job_labels = {
        **labels(spec.strategy_ref, "validation"),
        JOB_LABEL: "validation",
        VALIDATION_LABEL: label_value(run.name),
    }
    job_spec: Manifest = {"backoffLimit": 0, "podFailurePolicy": job_failure_policy(),
                          "activeDeadlineSeconds": _deadline(run)}
    if sweep is not None and slices is not None:
        job_spec.update({"completionMode": "Indexed", "completions": slices,
                         "parallelism": min(sweep.parallelism, slices)})
    job_spec["template"] = job_pod_template(job_labels, container, volumes, settings, **pod)
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": validation_job_name(run.name),
            "namespace": namespace,
            "labels": job_labels,
            "ownerReferences": [owner_reference("ValidationRun", run.name, uid)],
        },
        "spec": job_spec,
    }
