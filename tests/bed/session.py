"""One object that starts each test-bed server on first use and stops them all.

Lazy start keeps a `pytest tests/unit` run free of servers, and a run that only
needs Redis free of the control plane's start-up time.
"""

from __future__ import annotations

import threading

from tests.bed.build import Binaries, ensure_built, ensure_node_built
from tests.bed.controlplane import ControlPlane, start_control_plane
from tests.bed.images import ensure_images
from tests.bed.node import Node, start_node
from tests.bed.procs import reap_stale
from tests.bed.redis import RedisServer, start_redis


class Bed:
    """The servers of one test session (or one `python -m tests.bed up`)."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._redis: RedisServer | None = None
        self._binaries: Binaries | None = None
        self._control_plane: ControlPlane | None = None
        self._node: Node | None = None
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

    def binaries(self) -> Binaries:
        with self._lock:
            if self._binaries is None:
                self._binaries = ensure_built()
            return self._binaries

    def control_plane(self) -> ControlPlane:
        with self._lock:
            if self._control_plane is None:
                binaries = self.binaries()
                self._reap_once()
                self._control_plane = start_control_plane(binaries)
            return self._control_plane

    def node(self) -> Node:
        """The real single-node cluster (its own control plane; see tests/bed/node.py)."""
        with self._lock:
            if self._node is None:
                binaries = self.binaries()
                node_binaries = ensure_node_built()
                images = ensure_images()
                self._reap_once()
                self._node = start_node(binaries, node_binaries, images)
            return self._node

    def stop_node(self) -> None:
        """Stop the node (and release the machine-wide node lock) if it runs."""
        with self._lock:
            if self._node is not None:
                self._node.stop()
                self._node = None

    def stop(self) -> None:
        with self._lock:
            self.stop_node()
            if self._control_plane is not None:
                self._control_plane.stop()
                self._control_plane = None
            if self._redis is not None:
                self._redis.stop()
                self._redis = None
