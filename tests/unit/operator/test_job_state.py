"""The operator's reading of a Job's status (pre-flight and validation Jobs)."""

from __future__ import annotations

from kubetrade.operator.handlers.indexes import job_state


def test_conditions_decide_then_an_active_pod_means_running() -> None:
    assert job_state({}) == "Pending"
    assert job_state({"active": 1}) == "Running"
    # an Indexed Job with one of two indexes done is not Succeeded
    assert job_state({"active": 1, "succeeded": 1}) == "Running"
    # a pod retried after a failure (backoffLimit > 0) is not Failed yet
    assert job_state({"active": 1, "failed": 1}) == "Running"
    assert job_state({"succeeded": 1}) == "Succeeded"
    assert job_state({"failed": 1}) == "Failed"
    done = {"type": "Complete", "status": "True"}
    assert job_state({"conditions": [done], "active": 0, "succeeded": 2}) == "Succeeded"
    failed = {"type": "Failed", "status": "True"}
    assert job_state({"conditions": [failed], "active": 1, "succeeded": 1}) == "Failed"
    assert job_state({"conditions": [{**failed, "status": "False"}], "active": 1}) == "Running"
