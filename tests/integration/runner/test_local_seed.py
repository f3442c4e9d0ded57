"""`kubetrade local` with a persistent Redis: a restart seeds desired state from the
YAML files without undoing what people changed while it ran (a dashboard toggle of
``enabled``, risk settings), while edits to the files do apply (kubectl apply's
three-way merge, field by field: a value edited in the file since the last start wins,
one the file did not change keeps what people set)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from redis.asyncio import Redis
from structlog.testing import capture_logs

from kubetrade.cli._config import ConfigError
from kubetrade.cli._local.seed import load_strategy_dir, seed_desired
from kubetrade.cli.runner import load_file_manifests
from kubetrade.domain.clock import ManualClock
from kubetrade.resources.loader import strategy_with_defaults
from kubetrade.state.desired import LocalDesiredState
from kubetrade.state.keys import Keys

STRATEGY = """
apiVersion: kubetrade.io/v1alpha1
kind: Strategy
metadata: {{name: {name}}}
spec:
  algorithm: sma-crossover
  parameters: {{fastPeriod: {fast}, slowPeriod: 30}}
  symbols: ["BTC/USDT"]
  enabled: true
"""
POLICY = """
apiVersion: kubetrade.io/v1alpha1
kind: RiskPolicy
metadata: {name: default}
spec: {stopLossPct: 5.0}
"""


async def test_restart_keeps_toggles_and_settings_and_applies_file_edits(
    redis_client: Redis, tmp_path: Path
) -> None:
    desired = LocalDesiredState(
        redis_client, Keys("kt"), ManualClock(1), check_strategy=strategy_with_defaults
    )
    (tmp_path / "a.yaml").write_text(STRATEGY.format(name="btc-a", fast=10))
    (tmp_path / "policy.yaml").write_text(POLICY)
    await seed_desired(desired, *load_strategy_dir(tmp_path))
    # while it runs, a person disables btc-a and tightens the stop-loss on the dashboard
    await desired.set_strategy_enabled("btc-a", False, "dashboard")
    await desired.update_risk_policy("default", {"stopLossPct": 2.5}, "dashboard")
    # the files change: a parameter of btc-a, and a new strategy
    (tmp_path / "a.yaml").write_text(STRATEGY.format(name="btc-a", fast=12))
    (tmp_path / "b.yaml").write_text(STRATEGY.format(name="btc-b", fast=10))
    with capture_logs() as logs:  # whatever stream an earlier test left logging on
        await seed_desired(desired, *load_strategy_dir(tmp_path))  # the restart

    a = await desired.get_strategy("btc-a")
    assert a["spec"]["enabled"] is False  # the toggle survives
    assert a["spec"]["parameters"]["fastPeriod"] == 12  # the file's spec wins otherwise
    b = await desired.get_strategy("btc-b")
    assert b["spec"]["enabled"] is True  # new in the files: seeded
    policy = await desired.get_risk_policy("default")
    assert float(policy["spec"]["stopLossPct"]) == 2.5  # the settings change survives
    assert any(e["event"] == "local.seed_strategy" and e["strategy"] == "btc-a"
               and "enabled from stored desired state" in e["source"] for e in logs)
    # each file value not in force is a warning naming the field and both values
    kept = sorted((e["kind"], e["field"], e["in_force"], e["file"], e["log_level"])
                  for e in logs if e["event"] == "local.seed_field_kept")
    assert kept == [("RiskPolicy", "stopLossPct", "2.5", "5", "warning"),
                    ("Strategy", "enabled", False, True, "warning")]


async def test_an_edit_of_the_file_after_a_restart_applies_over_the_dashboard(
    redis_client: Redis, tmp_path: Path
) -> None:
    """A trader tightens stopLossPct and disables a strategy *in the file* and restarts:
    both apply, although the dashboard had changed the same fields before (before this,
    the stored values won and the file's edit was silently ignored). A field removed
    from the file goes back to its default."""
    desired = LocalDesiredState(
        redis_client, Keys("kt"), ManualClock(1), check_strategy=strategy_with_defaults
    )
    (tmp_path / "a.yaml").write_text(STRATEGY.format(name="btc-a", fast=10))
    (tmp_path / "policy.yaml").write_text(
        POLICY.replace("{stopLossPct: 5.0}", "{stopLossPct: 5.0, maxDrawdownPct: 9.0}"))
    await seed_desired(desired, *load_strategy_dir(tmp_path))
    await desired.update_risk_policy("default", {"stopLossPct": 2.5}, "dashboard")
    await desired.set_strategy_enabled("btc-a", False, "dashboard")
    await desired.set_strategy_enabled("btc-a", True, "telegram")

    (tmp_path / "policy.yaml").write_text(POLICY.replace("5.0", "3.0"))
    (tmp_path / "a.yaml").write_text(
        STRATEGY.format(name="btc-a", fast=10).replace("enabled: true", "enabled: false"))
    await seed_desired(desired, *load_strategy_dir(tmp_path))  # the restart

    spec = (await desired.get_risk_policy("default"))["spec"]
    assert Decimal(spec["stopLossPct"]) == 3  # the file's edit, not the dashboard's 2.5
    assert Decimal(spec["maxDrawdownPct"]) == 15  # removed from the file: the default
    assert (await desired.get_strategy("btc-a"))["spec"]["enabled"] is False

    await desired.update_risk_policy("default", {"stopLossPct": 4.0}, "dashboard")
    await seed_desired(desired, *load_strategy_dir(tmp_path))  # unchanged files
    spec = (await desired.get_risk_policy("default"))["spec"]
    assert Decimal(spec["stopLossPct"]) == 4  # the file did not change: the dashboard's


async def test_the_runbook_env_limits_are_the_policy_of_a_strategy_that_names_no_file(
    redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.env`'s STOP_LOSS_PCT=5.0 (the runbook's step 4) is what local trades under, as
    preflight judges it, when no RiskPolicy file defines the strategy's riskPolicyRef;
    a RiskPolicy file still wins over it."""
    monkeypatch.setenv("STOP_LOSS_PCT", "5.0")
    monkeypatch.setenv("DAILY_LOSS_LIMIT_PCT", "3.0")
    desired = LocalDesiredState(
        redis_client, Keys("kt"), ManualClock(1), check_strategy=strategy_with_defaults
    )
    (tmp_path / "a.yaml").write_text(STRATEGY.format(name="btc-a", fast=10))
    await seed_desired(desired, *load_strategy_dir(tmp_path))
    spec = (await desired.get_risk_policy("default"))["spec"]
    assert (Decimal(spec["stopLossPct"]), Decimal(spec["dailyLossLimitPct"])) == (5, 3)

    other = LocalDesiredState(
        redis_client, Keys("kt2"), ManualClock(1), check_strategy=strategy_with_defaults
    )
    (tmp_path / "policy.yaml").write_text(POLICY.replace("5.0", "7.5"))
    await seed_desired(other, *load_strategy_dir(tmp_path))
    assert Decimal((await other.get_risk_policy("default"))["spec"]["stopLossPct"]) == 7.5


def test_runner_from_a_file_reads_the_same_env_limits_and_refuses_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(STRATEGY.format(name="btc-a", fast=10))
    monkeypatch.setenv("STOP_LOSS_PCT", "5.0")
    _, risk = load_file_manifests(path, None)
    assert risk is not None and Decimal(risk["spec"]["stopLossPct"]) == 5
    monkeypatch.setenv("STOP_LOSS_PCT", "-1")
    with pytest.raises(ConfigError, match=r"^STOP_LOSS_PCT=-1: .*RiskPolicy stopLossPct"):
        load_file_manifests(path, None)
    monkeypatch.delenv("STOP_LOSS_PCT")
    assert load_file_manifests(path, None)[1] is None  # no variable: the defaults


async def test_a_line_removed_or_added_in_the_file_is_told_from_a_default(
    redis_client: Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The loader filled every default into the file's spec, so the merge saw every
    field as written in the file: a line removed kept the dashboard's value (logged as
    still in the file), and a line added with the default's value was ignored. The same
    for the environment's STOP_LOSS_PCT removed (a new-user trial)."""
    monkeypatch.setenv("STOP_LOSS_PCT", "4")
    desired = LocalDesiredState(
        redis_client, Keys("kt"), ManualClock(1), check_strategy=strategy_with_defaults
    )
    (tmp_path / "a.yaml").write_text(STRATEGY.format(name="btc-a", fast=10))
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("{stopLossPct: 5.0}",
                                     "{stopLossPct: 5.0, maxConcurrentPositions: 4}"))
    await seed_desired(desired, *load_strategy_dir(tmp_path))
    await desired.update_risk_policy(
        "default", {"maxConcurrentPositions": 2, "stopLimitOffsetPct": 0.7}, "dashboard")
    # the line goes; a line with the default's value comes
    policy.write_text(POLICY.replace("{stopLossPct: 5.0}",
                                     "{stopLossPct: 5.0, stopLimitOffsetPct: 0.5}"))
    with capture_logs() as logs:
        await seed_desired(desired, *load_strategy_dir(tmp_path))
    spec = (await desired.get_risk_policy("default"))["spec"]
    assert spec["maxConcurrentPositions"] == 3  # the default, not the dashboard's 2
    assert Decimal(spec["stopLimitOffsetPct"]) == Decimal("0.5")  # the file's new line
    events = {(e["event"], e.get("field")) for e in logs}
    assert ("local.seed_field_dropped", "maxConcurrentPositions") in events
    assert not [e for e in logs if e["event"] == "local.seed_field_kept"]

    # a strategy with no RiskPolicy file: the environment's limit, then none
    other = LocalDesiredState(
        redis_client, Keys("kt2"), ManualClock(1), check_strategy=strategy_with_defaults
    )
    policy.unlink()
    await seed_desired(other, *load_strategy_dir(tmp_path))
    assert Decimal((await other.get_risk_policy("default"))["spec"]["stopLossPct"]) == 4
    monkeypatch.delenv("STOP_LOSS_PCT")
    await seed_desired(other, *load_strategy_dir(tmp_path))
    assert Decimal((await other.get_risk_policy("default"))["spec"]["stopLossPct"]) == 5


def test_one_risk_policy_name_in_the_directory_and_the_file_is_refused(tmp_path: Path) -> None:
    from kubetrade.cli._local.seed import with_risk_policy_file

    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "a.yaml").write_text(
        STRATEGY.format(name="btc-a", fast=10) + "---" + POLICY.replace("5.0", "7.0"))
    (tmp_path / "riskpolicy.yaml").write_text(POLICY)
    _, policies = load_strategy_dir(tmp_path / "s")
    with pytest.raises(ValueError, match=r"RiskPolicy 'default' is also in --strategies"):
        with_risk_policy_file(policies, tmp_path / "s", tmp_path / "riskpolicy.yaml")
    (tmp_path / "riskpolicy.yaml").write_text(POLICY.replace("5.0", "7.0"))  # the same
    assert len(with_risk_policy_file(policies, tmp_path / "s",
                                     tmp_path / "riskpolicy.yaml")) == 1


async def test_a_strategy_whose_file_is_gone_is_removed_not_shown_running(
    redis_client: Redis, tmp_path: Path
) -> None:
    """Its file moved out of --strategies: no runner trades it, yet it stayed configured,
    enabled and Running (then Stale for good). Now it is removed from desired state and
    its summary says Removed (never Stale); its books stay; /api/status ignores it."""
    from kubetrade.api import schemas as s
    from kubetrade.api.views import overall_status
    from kubetrade.state.liveness import shown_phase

    keys = Keys("kt")
    desired = LocalDesiredState(
        redis_client, keys, ManualClock(1), check_strategy=strategy_with_defaults
    )
    (tmp_path / "a.yaml").write_text(STRATEGY.format(name="btc-a", fast=10))
    (tmp_path / "b.yaml").write_text(STRATEGY.format(name="btc-b", fast=10))
    await seed_desired(desired, *load_strategy_dir(tmp_path))
    await redis_client.hset(keys.summary("btc-b"),  # type: ignore[misc]
                            mapping={"phase": "Running", "trades": "3", "updated_ms": "1"})
    (tmp_path / "b.yaml").unlink()
    with capture_logs() as logs:
        await seed_desired(desired, *load_strategy_dir(tmp_path))
    assert [m["metadata"]["name"] for m in await desired.list_strategies()] == ["btc-a"]
    summary: dict[str, str] = await redis_client.hgetall(  # type: ignore[misc,assignment]
        keys.summary("btc-b"))
    assert summary["trades"] == "3"  # the books stay
    assert shown_phase(summary, 10**12) == "Removed"  # not Stale, however old
    assert [e["strategy"] for e in logs if e["event"] == "local.strategy_removed"] == ["btc-b"]
    removed = s.StrategyStatusOut(name="btc-b", phase="Removed", emergency_applied=False)
    halted = s.StrategyStatusOut(name="btc-a", phase="Halted", emergency_applied=True)
    assert overall_status("stop", [removed, halted]) == "stopped"  # not "stopping" forever
