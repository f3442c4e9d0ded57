"""EmergencyState's generation: stored only when set, read back, not in as_dict."""

from __future__ import annotations

import json

from kubetrade.state.schema import EmergencyState


def test_generation_is_stored_only_when_set_and_read_back() -> None:
    plain = EmergencyState("stop", 5, "alice", "night")
    assert plain.to_hash() == {"action": "stop", "since_ms": "5", "by": "alice", "reason": "night"}
    mirrored = EmergencyState("stop", 5, "alice", "night", generation=3)
    assert mirrored.to_hash()["generation"] == "3"
    assert json.loads(mirrored.to_message()) == {
        "action": "stop", "since_ms": 5, "by": "alice", "reason": "night", "generation": 3
    }
    assert EmergencyState.from_hash(mirrored.to_hash()) == mirrored
    assert EmergencyState.from_hash(plain.to_hash()).generation is None
    assert "generation" not in mirrored.as_dict()  # the API's shape stays four fields


def test_the_operator_message_encodes_as_before() -> None:
    # what operator/clients.publish_emergency wrote itself before: str(v) fields, the
    # message's JSON as given (key order included)
    message = {"action": "close-all", "since_ms": 1700000000123, "by": "k", "reason": "r",
               "generation": 7}
    state = EmergencyState.from_hash({k: str(v) for k, v in message.items()})
    assert state.to_hash() == {k: str(v) for k, v in message.items()}
    assert state.to_message() == json.dumps(message)
