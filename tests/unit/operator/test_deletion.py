"""The Strategy delete wait: bounded, with a way out, saying what it waits for."""

from __future__ import annotations

from dataclasses import replace

from kubetrade.operator.deletion import ABANDON_ANNOTATION, DeleteObserved, delete_step

WAITING = DeleteObserved("btc-sma", ("o-1",), (), waited_s=0, timeout_s=120, abandon=False)


def test_nothing_pending_removes_the_runner_now() -> None:
    step = delete_step(replace(WAITING, open_orders=()))
    assert step.done and not step.pending and step.reason == "RunnerStopped"


def test_open_orders_wait_and_say_how_to_stop_waiting() -> None:
    step = delete_step(WAITING)
    assert not step.done and step.reason == "WaitingForRunner"
    assert "120s more" in step.message and "1 open order(s)" in step.message
    assert f"kubectl annotate strategy btc-sma {ABANDON_ANNOTATION}=true" in step.message


def test_unknown_state_waits_too() -> None:
    step = delete_step(replace(WAITING, open_orders=None))
    assert not step.done and "Redis unreachable" in step.message
    assert not delete_step(replace(WAITING, open_orders=(), positions=None)).done


def test_the_wait_is_bounded() -> None:
    step = delete_step(replace(WAITING, waited_s=120))
    assert step.done and step.pending and step.reason == "DeleteTimedOut"


def test_the_annotation_ends_the_wait_at_once() -> None:
    step = delete_step(replace(WAITING, abandon=True, positions=("BTC/USDT",)))
    assert step.done and step.reason == "OpenOrdersAbandoned"
    assert "positions to close: BTC/USDT" in step.message
