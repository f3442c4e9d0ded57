"""ValidationRuns beyond one run, with the operator running on the test bed:

- ``spec.sweep`` becomes ONE Indexed Job (completions = slices, parallelism from the
  spec); its pods (run here as local processes with the Job's command, env, service
  account and ``JOB_COMPLETION_INDEX``, as the bed has no kubelet) each report a slice,
  and the operator gathers them into the status (progress while they run, the ranking
  and the decision at the end) and the report ConfigMap. The gathered ranking is the
  one ``kubetrade validate --sweep`` makes on one machine.
- ``replay: store`` with ``storeRange.download``: the Job's init container downloads
  the range (from the fake Binance) into the candle volume, then the run replays it
  from the store. The volume's mount path is mapped to a directory here, as a kubelet
  would mount it.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis

from kubetrade.operator.render_validation import DATADIR
from kubetrade.state.keys import Keys
from tests.e2e.validation.test_validation_run_operator import finish_job, run_job_pod
from tests.fakes.binance import FakeBinance
from tests.fixtures.kubetrade_operator import OperatorBed, wait_for

STRATEGY = """apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {name: btc-sma}
spec:
  algorithm: sma-crossover
  parameters: {fastPeriod: 10, slowPeriod: 30}
  symbols: ["BTC/USDT"]
  timeframe: 1m
  mode: paper
"""

SWEEP_RUN = """apiVersion: kubetrade.io/v1alpha1
kind: ValidationRun
metadata: {name: btc-sweep}
spec:
  strategyRef: btc-sma
  replay: bundled
  sweep:
    parameters: {fastPeriod: [5, 10], slowPeriod: [20, 30]}
    parallelism: 2
"""

STORE_RUN = """apiVersion: kubetrade.io/v1alpha1
kind: ValidationRun
metadata: {name: btc-store}
spec:
  strategyRef: btc-sma
  replay: store
  storeRange: {since: "2024-09-21", until: "2024-09-21T23:59", download: true}
"""

TIMEOUT = 120  # seconds; conditions are waited on, never slept for


def as_pod(job: dict[str, Any], container: dict[str, Any], datadir: Path) -> dict[str, Any]:
    """``job`` with ``container`` as its one container, the candle volume's mount path
    mapped to ``datadir`` (what run_job_pod runs)."""
    one = copy.deepcopy(job)
    c = copy.deepcopy(container)
    c["args"] = [str(datadir) if a == DATADIR else a for a in c.get("args", [])]
    c["command"] = [str(datadir) if a == DATADIR else a for a in c.get("command", [])]
    one["spec"]["template"]["spec"]["containers"] = [c]
    return one


def mark_active(bed: OperatorBed, job: str, active: int) -> None:
    bed.kubectl("patch", "job", job, "--subresource=status", "--type=merge", "-p",
                json.dumps({"status": {"active": active}}))


def local_sweep(tmp_path: Path) -> dict[str, Any]:
    """The same sweep by ``kubetrade validate --sweep`` on this machine: its report."""
    (tmp_path / "s.yaml").write_text(STRATEGY)
    out = tmp_path / "local"
    proc = subprocess.run(
        [sys.executable, "-m", "kubetrade", "validate", "--strategy-file",
         str(tmp_path / "s.yaml"), "--replay", "bundled", "--sweep", "fastPeriod=5,10",
         "--sweep", "slowPeriod=20,30", "--jobs", "1", "--report-dir", str(out), "--no-html"],
        capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode in (0, 3), proc.stderr
    (report,) = out.glob("validation_report_*.json")
    result: dict[str, Any] = json.loads(report.read_text())
    return result


def test_sweep_is_one_indexed_job_whose_slices_the_operator_gathers(
    operator_bed: OperatorBed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bed = operator_bed
    bed.start()
    bed.apply(STRATEGY + "---\n" + SWEEP_RUN)
    job = wait_for(lambda: bed.get("job", "validation-btc-sweep"), 60, "the sweep's Job")
    spec = job["spec"]
    assert (spec["completionMode"], spec["completions"], spec["parallelism"]) == (
        "Indexed", 2, 2)
    (container,) = spec["template"]["spec"]["containers"]
    assert container["command"][-2:] == ["--sweep-top", "10"]
    assert "--sweep-slices" in container["command"]
    mark_active(bed, "validation-btc-sweep", 2)

    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    assert run_job_pod(bed, job, tmp_path) == 0

    def half() -> dict[str, Any] | None:
        status = (bed.get("validationrun", "btc-sweep") or {}).get("status") or {}
        sweep = status.get("sweep") or {}
        return status if sweep.get("slicesDone") == 1 else None

    status = wait_for(half, TIMEOUT, "one slice of two gathered")
    assert status["sweep"]["done"] == 2 and status["sweep"]["combinations"] == 4
    assert status["progress"].startswith("2 of 4 combinations (50%)")
    assert "decision" not in status and status["phase"] == "Running"

    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    assert run_job_pod(bed, job, tmp_path) == 0
    finish_job(bed, "validation-btc-sweep", ok=True)

    def decided() -> dict[str, Any] | None:
        status = (bed.get("validationrun", "btc-sweep") or {}).get("status") or {}
        return status if status.get("decision") and status.get("phase") == "Succeeded" else None

    status = wait_for(decided, TIMEOUT, "the sweep gathered with a decision")
    sweep = status["sweep"]
    # the operator published the gathered verdict as a validate pod does its own
    r: Any = redis.Redis.from_url(bed.redis_url, decode_responses=True)
    keys = Keys(bed.prefix)
    latest = json.loads(r.get(keys.validation_latest) or "{}")
    assert latest["decision"] == status["decision"] and latest["strategy"] == "btc-sma"
    assert latest["report"].endswith(status["reportConfigMap"])
    assert [f["kind"] for _, f in r.xrange(keys.alerts)].count("validation_result") == 1
    assert (sweep["slices"], sweep["slicesDone"], sweep["done"]) == (2, 2, 4)
    slices = {json.loads(cm["data"]["slice.json"])["slice"]: cm for cm in
              bed.items("configmap", "kubetrade.io/sweep-slice")}
    assert sorted(slices) == [0, 1]

    # the ranking and decision are those of the same sweep on one machine
    local = local_sweep(tmp_path)["sweep"]
    assert [e["parameters"] for e in sweep["top"]] == [
        {k: v for k, v in e["parameters"].items()} for e in local["top"]]
    assert sweep["best"]["sharpe"] == pytest.approx(local["best"]["sharpe"])
    winner = json.loads(slices[sweep["winnerSlice"]]["data"]["slice.json"])
    assert winner["top"][0]["parameters"] == sweep["best"]["parameters"]
    assert status["decision"] == winner["decision"]

    cm = bed.get("configmap", status["reportConfigMap"])
    assert cm is not None
    report = json.loads(cm["data"]["report.json"])
    assert report["decision"] == status["decision"]
    assert report["run"]["parameters"]["fastPeriod"] == sweep["best"]["parameters"]["fastPeriod"]
    assert report["sweep"]["combinations"] == 4 and len(report["sweep"]["top"]) == 4
    assert "Sweep: 4 combinations in 2 slices" in cm["data"]["summary.txt"]


def test_store_replay_downloads_its_range_in_an_init_container(
    operator_bed: OperatorBed, fake_binance: FakeBinance, tmp_path: Path
) -> None:
    bed = operator_bed
    bed.start(KUBETRADE_EXCHANGE_URL=fake_binance.url)
    bed.apply(STRATEGY + "---\n" + STORE_RUN)
    job = wait_for(lambda: bed.get("job", "validation-btc-store"), 60, "the run's Job")
    pod = job["spec"]["template"]["spec"]
    (init,) = pod["initContainers"]
    assert init["command"][:6] == ["kubetrade", "data", "download", "--symbols", "BTC/USDT",
                                   "--timeframes"]
    volume = next(v for v in pod["volumes"] if v["name"] == "candle-data")
    assert "emptyDir" in volume  # the bed's operator has no candle claim configured
    datadir = tmp_path / "candles"
    datadir.mkdir()
    assert run_job_pod(bed, as_pod(job, init, datadir), tmp_path) == 0
    assert list(datadir.rglob("*.parquet")), "the download step stored nothing"
    (main,) = pod["containers"]
    assert run_job_pod(bed, as_pod(job, main, datadir), tmp_path) == 0
    finish_job(bed, "validation-btc-store", ok=True)

    def done() -> dict[str, Any] | None:
        status = (bed.get("validationrun", "btc-store") or {}).get("status") or {}
        return status if status.get("phase") == "Succeeded" and status.get("decision") else None

    status = wait_for(done, TIMEOUT, "the store replay decided")
    cm = bed.get("configmap", status["reportConfigMap"])
    assert cm is not None
    report = json.loads(cm["data"]["report.json"])
    assert report["run"]["source"] == "store"
    assert report["run"]["data"]["candles"] == 1440


def test_a_failed_slice_fails_the_sweep_with_its_reason(
    operator_bed: OperatorBed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bed = operator_bed
    bed.start()
    # slice 1 holds only fastPeriod 40 > slowPeriod 30: nothing in it can run
    bed.apply(STRATEGY + "---\n" + SWEEP_RUN.replace("btc-sweep", "btc-bad").replace(
        "{fastPeriod: [5, 10], slowPeriod: [20, 30]}", "{fastPeriod: [5, 40], slowPeriod: [30]}"))
    job = wait_for(lambda: bed.get("job", "validation-btc-bad"), 60, "the sweep's Job")
    assert job["spec"]["completions"] == 2
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    assert run_job_pod(bed, job, tmp_path) == 2
    finish_job(bed, "validation-btc-bad", ok=False)

    def failed() -> dict[str, Any] | None:
        # the pod marks the run Failed itself at once; wait for the operator's view of
        # the failed Job too
        complete = bed.condition("validationrun", "btc-bad", "Complete") or {}
        if complete.get("reason") != "JobFailed":
            return None
        status: dict[str, Any] = (bed.get("validationrun", "btc-bad") or {})["status"]
        return status

    status = wait_for(failed, TIMEOUT, "the sweep Failed")
    assert status["phase"] == "Failed" and "decision" not in status
    assert status["progress"] == (
        "failed: ValueError: sweep slice 1: sweep: none of the 1 combinations could run; "
        "fastPeriod=40 slowPeriod=30: slowPeriod (30) must be greater than fastPeriod (40)")
