"""The Emergency mirror decision: what reaches Redis, and what the status says."""

from __future__ import annotations

import json
from typing import Any

from kubetrade.operator.mirror import (
    Mirror,
    acknowledgements,
    decide,
    emergency_status,
    unmirrored_status,
)

NOW = 1_700_000_000_000
META = {"name": "default", "namespace": "trading", "generation": 4}
SEEN = {"observedGeneration": 4}  # the resource has not changed since the last mirror


def spec(action: str = "stop", by: str = "alice", reason: str = "drill") -> dict[str, Any]:
    return {"action": action, "requestedBy": by, "reason": reason}


def held(action: str, by: str = "alice", reason: str = "drill", since: int = 1) -> dict[str, str]:
    """The emergency hash as the mirror of generation 4 wrote it."""
    return {
        "action": action,
        "by": by,
        "reason": reason,
        "since_ms": str(since),
        "generation": "4",
    }


def test_a_new_action_is_written_from_now() -> None:
    m = decide(spec(), META, SEEN, held("none"), NOW)
    assert (m.action, m.by, m.reason, m.since_ms) == ("stop", "alice", "drill", NOW)
    assert m.changed and m.ahead is None
    assert m.message == {
        "action": "stop",
        "since_ms": NOW,
        "by": "alice",
        "reason": "drill",
        "generation": 4,
    }


def test_an_empty_redis_gets_the_action() -> None:
    m = decide({}, META, {}, {}, NOW)
    assert (m.action, m.by, m.reason) == ("none", "kubernetes", "")
    assert m.changed and m.since_ms == NOW


def test_the_same_action_keeps_its_time_and_is_not_rewritten() -> None:
    m = decide(spec(), META, SEEN, held("stop", since=123), NOW)
    assert not m.changed and m.since_ms == 123


def test_a_new_requester_rewrites_but_keeps_the_time() -> None:
    m = decide(spec(by="bob"), META, SEEN, held("stop", since=123), NOW)
    assert m.changed and m.since_ms == 123 and m.by == "bob"


def test_a_stronger_redis_only_action_stays_in_force() -> None:
    m = decide(spec("none", by="kubernetes", reason=""), META, SEEN, held("stop", "bot", "x"), NOW)
    assert (m.action, m.by, m.reason, m.ahead) == ("stop", "bot", "x", "stop")
    assert not m.changed and m.since_ms == 1


def test_close_all_outranks_stop() -> None:
    m = decide(spec("stop"), META, SEEN, held("close-all", "api", "y"), NOW)
    assert m.ahead == "close-all" and m.action == "close-all"


def test_a_changed_resource_overrides_redis() -> None:
    m = decide(spec("none"), META, {"observedGeneration": 3}, held("stop"), NOW)
    assert m.action == "none" and m.ahead is None and m.changed


def test_acks_count_only_this_change_of_the_emergency() -> None:
    m = Mirror("stop", "alice", "drill", NOW, None, False, generation=4)
    acks = {
        "r1": json.dumps({"action": "stop", "generation": 4}),
        "r2": json.dumps({"action": "none", "generation": 4}),
        "r3": "not json",
        "r4": json.dumps({"action": "stop"}),  # no generation: an old-style ack
        "r5": json.dumps({"action": "stop", "generation": 2}),  # an earlier stop
        "gone": json.dumps({"action": "stop", "generation": 4}),  # not a runner now
    }
    runners = ["r1", "r2", "r3", "r4", "r5", "r6"]
    assert acknowledgements(acks, m, runners) == (["r1"], ["r2", "r3", "r4", "r5", "r6"])
    assert acknowledgements({}, m, []) == ([], [])


def test_a_redis_only_stop_is_acked_by_its_since_ms() -> None:
    m = Mirror("stop", "bot", "x", 77, "stop", False, generation=None)
    acks = {
        "r1": json.dumps({"action": "stop", "since_ms": 77}),
        "r2": json.dumps({"action": "stop", "since_ms": 12}),
    }
    assert acknowledgements(acks, m, ["r1", "r2"]) == (["r1"], ["r2"])


def test_a_new_generation_of_the_same_action_is_published() -> None:
    m = decide(spec(), {**META, "generation": 5}, SEEN, held("stop", since=123), NOW)
    assert m.changed and m.since_ms == 123 and m.message["generation"] == 5


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["type"]: c for c in status["conditions"]}


def test_status_of_a_mirrored_action() -> None:
    m = Mirror("stop", "alice", "drill", NOW, None, True)
    status = emergency_status(META, {}, m, acked=1, waiting=["b"], now_ms=NOW)
    assert status["state"] == "stop" and status["since"] == "2023-11-14T22:13:20Z"
    assert (status["acknowledged"], status["runners"], status["observedGeneration"]) == (1, 2, 4)
    c = conditions(status)
    assert (c["Mirrored"]["status"], c["Mirrored"]["reason"]) == ("True", "MirroredToRedis")
    assert (c["Acknowledged"]["status"], c["Acknowledged"]["reason"]) == (
        "False",
        "WaitingForRunners",
    )
    assert status["waitingFor"] == ["b"]
    assert c["Acknowledged"]["message"] == "1 of 2 runner(s) acknowledged stop; waiting for: b"
    done = emergency_status(META, status, m, acked=2, waiting=[], now_ms=NOW)
    assert conditions(done)["Acknowledged"]["reason"] == "AllRunnersAcknowledged"


def test_status_of_a_redis_only_action() -> None:
    m = Mirror("stop", "bot", "x", NOW, "stop", False)
    c = conditions(emergency_status(META, {}, m, acked=0, waiting=[], now_ms=NOW))
    assert (c["Mirrored"]["status"], c["Mirrored"]["reason"]) == ("False", "RedisAhead")
    assert "stop by bot" in c["Mirrored"]["message"]


def test_status_when_redis_is_unavailable() -> None:
    status = unmirrored_status(META, {}, "stop", "RedisUnavailable", "Redis: down", NOW)
    assert status["state"] == "stop"
    (mirrored,) = status["conditions"]
    assert (mirrored["status"], mirrored["reason"]) == ("False", "RedisUnavailable")
