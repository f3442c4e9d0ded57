"""The typed Redis records write exactly what runners, the operator and the API read,
and read back what they wrote (including values a newer writer adds)."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from kubetrade.domain.emergency import EmergencyAction
from kubetrade.state.schema import (
    EmergencyAck,
    EmergencyState,
    ReconciliationRecord,
    StrategySummary,
    summary_hash,
)


def test_emergency_state_encodings() -> None:
    state = EmergencyState.new("close-all", 1_700_000_000_000, "telegram:42", "test")
    assert state.kind is EmergencyAction.CLOSE_ALL
    assert state.to_hash() == {
        "action": "close-all", "since_ms": "1700000000000", "by": "telegram:42", "reason": "test",
    }
    assert json.loads(state.to_message()) == state.as_dict()
    assert state.as_dict()["since_ms"] == 1_700_000_000_000
    assert EmergencyState.from_hash(state.to_hash()) == state


def test_emergency_state_never_set_reads_none() -> None:
    assert EmergencyState.from_hash({}) == EmergencyState("none", 0, "", "")


def test_emergency_state_refuses_an_unknown_action_naming_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="must be one of none, stop, close-all, got 'pause'"):
        EmergencyState.new("pause", 0, "me", "")


def test_emergency_ack_round_trip_and_tolerance() -> None:
    ack = EmergencyAck("stop", 5, ("a", "b"))
    assert ack.to_json() == '{"action":"stop","ts_ms":5,"cancelled":["a","b"]}'
    back = EmergencyAck.from_json(ack.to_json())
    assert back == ack and back is not None and back.as_dict() == json.loads(ack.to_json())
    assert EmergencyAck.from_json("not json") is None
    assert EmergencyAck.from_json("[1]") is None
    assert EmergencyAck.from_json(None) is None


def test_summary_hash_and_typed_read() -> None:
    written = summary_hash({
        "phase": "Running", "equity": "10008.799", "trades": 3, "win_rate": 0.5,
        "halted": False, "halted_reason": None, "mode": "paper", "future_field": Decimal("1.5"),
    })
    assert written["halted_reason"] == "" and written["halted"] == "False"
    summary = StrategySummary.from_hash(written)
    assert summary.equity == Decimal("10008.799")
    assert (summary.trades, summary.win_rate, summary.halted) == (3, 0.5, False)
    assert summary.pnl is None  # absent
    assert summary.to_hash() == written  # unknown fields pass through


def test_summary_unparsable_values_read_as_none() -> None:
    summary = StrategySummary.from_hash({"equity": "n/a", "trades": "many"})
    assert summary.equity is None and summary.trades is None


def test_reconciliation_record() -> None:
    result = {
        "strategy": "s", "ts_ms": 7, "trigger": "start", "status": "mismatch", "ok": False,
        "positions_checked": 1, "orders_checked": 2, "error": "",
        "mismatches": [{"kind": "balance", "subject": "BTC", "local": "1", "exchange": "0",
                        "detail": ""}],
    }
    record = ReconciliationRecord.from_json(ReconciliationRecord.encode(result))
    assert record is not None
    assert record.as_dict() == result
    assert record.mismatches[0].subject == "BTC" and not record.ok
    assert ReconciliationRecord.from_json("") is None
