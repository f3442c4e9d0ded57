"""One object that starts each test-bed server on first use and stops them all.

Lazy start keeps a `pytest tests/unit` run free of servers, and a run that only
needs Redis free of the control plane's start-up time.
"""

from __future__ import annotations

import threading

from tests.bed.procs import reap_stale
from tests.bed.redis import RedisServer, start_redis


class Bed:
    """The servers of one test session (or one `python -m tests.bed up`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._redis: RedisServer | None = None
        self._reaped = False

    def _reap_once(self) -> None:
        if not self._reaped:
            reap_stale()
            self._reaped = True

    def redis(self) -> RedisServer:
        with self._lock:
            if self._redis is None:
                self._reap_once()
                self._redis = start_redis()
            return self._redis

    def stop(self) -> None:
        with self._lock:
            if self._redis is not None:
                self._redis.stop()
                self._redis = None
