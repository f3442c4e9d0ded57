"""A failing object is retried with a growing wait and reported once per message."""

from __future__ import annotations

from kubetrade.operator.backoff import Backoff

KEY = ("ValidationRun", "ns", "btc-sma.v2")


def test_waits_double_up_to_the_cap_and_report_once() -> None:
    b = Backoff(base_s=5, cap_s=30)
    assert b.due(KEY, 0)
    assert b.failed(KEY, 0, "boom") == (True, 5)
    assert not b.due(KEY, 4_999) and b.due(KEY, 5_000)
    assert b.failed(KEY, 5_000, "boom") == (False, 10)
    assert b.failed(KEY, 15_000, "boom") == (False, 20)
    assert b.failed(KEY, 35_000, "boom") == (False, 30)
    assert b.failed(KEY, 65_000, "other") == (True, 30)  # a new message is reported


def test_success_forgets() -> None:
    b = Backoff()
    b.failed(KEY, 0, "boom")
    assert b.succeeded(KEY) and not b.succeeded(KEY)
    assert b.due(KEY, 0) and b.failed(KEY, 0, "boom") == (True, 5)
