"""The operator's Emergency -> Redis mirror must never undo a kill switch.

When the Kubernetes API is down, the API and the Telegram bot deliver a stop through
Redis only (``KubernetesDesiredState.set_emergency``) and the Emergency resource keeps
its old ``none``. Neither the operator's periodic resync nor its restart may then
publish that stale ``none``: runners would trade again with nobody having resumed.
Only a real change of the resource (a new generation) resumes.
"""

from __future__ import annotations

import json
import time
from typing import Any

import redis

from kubetrade.state.keys import Keys
from tests.fixtures.kubetrade_operator import OperatorBed, wait_for

EMERGENCY = "apiVersion: kubetrade.io/v1alpha1\nkind: Emergency\nmetadata: {name: default}\n"


def _redis_only_stop(r: Any, keys: Keys, action: str = "stop") -> None:
    """What set_emergency writes when the Emergency resource cannot be patched."""
    state = {
        "action": action,
        "since_ms": int(time.time() * 1000),
        "by": "telegram:42",
        "reason": "Telegram /stop",
    }
    r.hset(keys.emergency, mapping={k: str(v) for k, v in state.items()})
    r.publish(keys.emergency_channel, json.dumps(state))


def _mirrored(bed: OperatorBed) -> dict[str, Any] | None:
    return bed.condition("emergency", "default", "Mirrored")


def _spec(bed: OperatorBed) -> dict[str, Any]:
    return dict((bed.get("emergency", "default") or {}).get("spec") or {})


def test_resync_and_restart_never_publish_a_stale_none(operator_bed: OperatorBed) -> None:
    bed = operator_bed
    r: Any = redis.Redis.from_url(bed.redis_url, decode_responses=True)
    keys = Keys(bed.prefix)
    bed.apply(EMERGENCY)
    bed.start()
    wait_for(lambda: r.hget(keys.emergency, "action") == "none", 30, "initial mirror")
    wait_for(
        lambda: (bed.get("emergency", "default") or {}).get("status", {}).get("observedGeneration"),
        15,
        "status.observedGeneration",
    )

    _redis_only_stop(r, keys)
    # The periodic resync runs every second or two. It must not overwrite the stop; it
    # records it on the resource, so runners that watch the resource (and kubectl) see
    # the stop too.
    wait_for(
        lambda: r.hget(keys.emergency, "action") != "stop" or _spec(bed).get("action") == "stop",
        30,
        "the resync to see the Redis-only stop",
    )
    assert r.hget(keys.emergency, "action") == "stop", "resync published a stale none"
    assert _spec(bed) == {
        "action": "stop",
        "requestedBy": "telegram:42",
        "reason": "Telegram /stop",
    }
    wait_for(lambda: (_mirrored(bed) or {}).get("status") == "True", 15, "Mirrored=True again")
    assert r.hget(keys.emergency, "action") == "stop"

    # The same while the operator is down (SIGKILL): its restart must not resume runners.
    bed.kill()
    _redis_only_stop(r, keys, "close-all")
    bed.start()
    wait_for(
        lambda: (
            r.hget(keys.emergency, "action") != "close-all"
            or _spec(bed).get("action") == "close-all"
        ),
        60,
        "the restarted operator to see the Redis-only close-all",
    )
    assert r.hget(keys.emergency, "action") == "close-all", "restart published a stale stop"

    # A real resume (a change of the resource) still reaches Redis.
    bed.kubectl(
        "patch",
        "emergency",
        "default",
        "--type=merge",
        "-p",
        '{"spec":{"action":"none","reason":"all clear","requestedBy":"alice"}}',
    )
    wait_for(lambda: r.hget(keys.emergency, "action") == "none", 15, "resume mirrored")
    assert r.hget(keys.emergency, "by") == "alice"
    assert _spec(bed)["action"] == "none"


def test_a_lost_redis_state_is_restored_from_the_resource(operator_bed: OperatorBed) -> None:
    """Redis flushed or restarted while the resource says stop: the stop is re-published."""
    bed = operator_bed
    r: Any = redis.Redis.from_url(bed.redis_url, decode_responses=True)
    keys = Keys(bed.prefix)
    bed.apply(EMERGENCY.rstrip("\n") + "\nspec: {action: stop, reason: drill}\n")
    bed.start()
    wait_for(lambda: r.hget(keys.emergency, "action") == "stop", 30, "initial mirror")
    r.delete(keys.emergency)
    wait_for(lambda: r.hget(keys.emergency, "action") == "stop", 15, "stop re-published")
