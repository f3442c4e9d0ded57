"""The Job of a sweep (one Indexed Job) and of a store replay (candle volume, download
step), as the operator renders them; and the gathered status and report."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kubetrade.domain.sweeps import gather
from kubetrade.operator.render_validation import DATADIR, validation_job
from kubetrade.operator.settings import OperatorSettings
from kubetrade.operator.sweep_gather import gathered_report, report_config_map, sweep_status
from kubetrade.resources import ValidationRun
from kubetrade.resources.validationrun_sweep import ParameterSweep
from kubetrade.validation.sweep import parse_grid

SETTINGS = OperatorSettings(namespace="trading", image="kubetrade:test")


def run(**spec: Any) -> ValidationRun:
    return ValidationRun.model_validate({
        "metadata": {"name": "v1", "namespace": "trading"},
        "spec": {"strategyRef": "btc-sma", **spec}})


def pod(job: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = job["spec"]["template"]["spec"]
    return spec


def flag(command: list[str], name: str) -> list[str]:
    return [command[i + 1] for i, a in enumerate(command) if a == name]


def test_a_sweep_is_one_indexed_job_of_slices() -> None:
    job = validation_job(run(replay="bundled", sweep={
        "parameters": {"fastPeriod": [5, 10, 20], "slowPeriod": [30, 50]},
        "parallelism": 3, "inSamplePct": 75, "top": 5}), "uid", SETTINGS)
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert (spec["completions"], spec["parallelism"]) == (3, 3)
    assert spec["backoffLimit"] == 0 and spec["activeDeadlineSeconds"] == 6 * 3600
    # a slice whose pod a node drain evicted runs again; only its own failure counts
    assert [r["action"] for r in spec["podFailurePolicy"]["rules"]] == ["Ignore"]
    (c,) = pod(job)["containers"]
    cmd = c["command"]
    assert flag(cmd, "--sweep-slices") == ["3"] and flag(cmd, "--jobs") == ["1"]
    assert flag(cmd, "--in-sample") == ["0.75"] and flag(cmd, "--sweep-top") == ["5"]
    assert flag(cmd, "--replay") == ["bundled"]
    # the grid the pod parses back is the spec's, values as typed
    assert parse_grid(flag(cmd, "--sweep")) == {"fastPeriod": [5, 10, 20],
                                                "slowPeriod": [30, 50]}


def test_slices_and_parallelism_never_exceed_the_combinations() -> None:
    small = validation_job(run(replay="bundled", sweep={
        "parameters": {"stdDev": [1.5, 2.5]}, "parallelism": 8}), "uid", SETTINGS)["spec"]
    assert (small["completions"], small["parallelism"]) == (2, 2)
    assert parse_grid(flag(pod({"spec": small})["containers"][0]["command"], "--sweep")) == {
        "stdDev": [1.5, 2.5]}
    many = validation_job(run(replay="bundled", sweep={
        "parameters": {"fastPeriod": list(range(2, 12))}, "samples": 6, "seed": 4,
        "parallelism": 2, "slices": 4}), "uid", SETTINGS)["spec"]
    assert (many["completions"], many["parallelism"]) == (4, 2)
    cmd = pod({"spec": many})["containers"][0]["command"]
    assert flag(cmd, "--samples") == ["6"] and flag(cmd, "--seed") == ["4"]


def test_one_run_is_not_indexed() -> None:
    spec = validation_job(run(replay="bundled"), "uid", SETTINGS)["spec"]
    assert "completionMode" not in spec and "completions" not in spec


def test_a_store_replay_mounts_the_candle_claim_read_only() -> None:
    settings = OperatorSettings(namespace="trading", candle_claim="kt-kubetrade-candles")
    job = validation_job(run(replay="store", storeRange={
        "since": "2024-01-01", "until": "2024-03-01T00:00Z"}), "uid", settings)
    p = pod(job)
    assert {"name": "candle-data",
            "persistentVolumeClaim": {"claimName": "kt-kubetrade-candles"}} in p["volumes"]
    (c,) = p["containers"]
    assert {"name": "candle-data", "mountPath": DATADIR, "readOnly": True} in c["volumeMounts"]
    cmd = c["command"]
    assert flag(cmd, "--replay") == ["store"] and flag(cmd, "--datadir") == [DATADIR]
    assert flag(cmd, "--since") == ["2024-01-01"]
    assert flag(cmd, "--until") == ["2024-03-01T00:00Z"]
    assert "initContainers" not in p


def test_the_download_step_fills_the_store_first() -> None:
    job = validation_job(run(replay="store", storeRange={"since": "2024-01-01",
                                                         "download": True}),
                         "uid", SETTINGS, ("ETH/USDT", "1h"))
    p = pod(job)
    assert {"name": "candle-data", "emptyDir": {"sizeLimit": "2Gi"}} in p["volumes"]
    (init,) = p["initContainers"]
    assert init["command"] == ["kubetrade", "data", "download", "--symbols", "ETH/USDT",
                               "--timeframes", "1h", "--since", "2024-01-01", "--datadir",
                               DATADIR, "--progress", "json"]
    assert {"name": "candle-data", "mountPath": DATADIR} in init["volumeMounts"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    assert "exchange-keys" not in json.dumps(p)  # public market data, never the keys
    with pytest.raises(ValueError, match="symbol and timeframe"):
        validation_job(run(replay="store", storeRange={"since": "2024-01-01",
                                                       "download": True}), "uid", SETTINGS)


def test_spec_rules_hold_offline_too() -> None:
    with pytest.raises(ValueError, match=r"storeRange needs spec\.replay: store"):
        run(replay="bundled", storeRange={"since": "2024-01-01"})
    with pytest.raises(ValueError, match=r"sweep needs spec\.replay"):
        run(sweep={"parameters": {"fastPeriod": [5]}})
    with pytest.raises(ValueError, match="at most 100000"):
        run(replay="bundled", sweep={"parameters": {
            f"p{i}": list(range(10)) for i in range(6)}})
    assert run(replay="bundled", sweep={"parameters": {f"p{i}": list(range(10))
                                                       for i in range(6)},
                                        "samples": 50}).spec.sweep is not None


def test_gathered_status_and_report() -> None:
    sweep = ParameterSweep.model_validate({"parameters": {"fastPeriod": [5, 10]},
                                           "parallelism": 2})
    a = {"parameters": {"fastPeriod": 5}, "sharpe": 0.3, "total_return": 0.01, "trades": 4,
         "max_drawdown": 0.02}
    b = {"parameters": {"fastPeriod": 10}, "sharpe": 1.3, "total_return": 0.04, "trades": 9,
         "max_drawdown": 0.03}
    docs = [{"slice": 0, "combinations": 1, "done": 1, "complete": True, "top": [a],
             "decision": "NO-GO"},
            {"slice": 1, "combinations": 1, "done": 1, "complete": True, "top": [b],
             "decision": "GO"}]
    g = gather(docs, 2, sweep.top, sweep.combinations())
    status = sweep_status(g, sweep)
    assert status["best"] == {"parameters": {"fastPeriod": 10}, "sharpe": 1.3,
                              "totalReturn": 0.04, "trades": 9, "maxDrawdown": 0.03}
    assert (status["slicesDone"], status["winnerSlice"], status["parallelism"]) == (2, 1, 2)
    winner = {"report.json": json.dumps({"decision": "GO", "failed_criteria": [],
                                         "sweep": {"slice": {"index": 1, "of": 2},
                                                   "top": [b], "in_sample": {"candles": 7}}}),
              "summary.txt": "Decision: GO\n"}
    report, summary = gathered_report(g, winner)
    assert report["sweep"]["top"] == [b, a] and report["sweep"]["winner_slice"] == 1
    assert "slice" not in report["sweep"] and report["sweep"]["in_sample"] == {"candles": 7}
    assert "Sweep: 2 combinations in 2 slices" in summary and "fastPeriod=10" in summary
    cm = report_config_map("v1", "trading", "uid-1", report, summary)
    assert cm["metadata"]["name"] == "v1-report"
    assert cm["metadata"]["ownerReferences"][0]["uid"] == "uid-1"
    assert json.loads(cm["data"]["report.json"])["decision"] == "GO"
