"""The test bed: real Redis and a real Kubernetes control plane on loopback.

`python -m tests.bed build` builds and caches the control-plane and node binaries and
the node's images; `python -m tests.bed up [--node]` starts everything for use by
hand. Tests get the servers through the fixtures in tests/fixtures/bed.py.
"""

from tests.bed.build import (
    Binaries,
    BuildError,
    NodeBinaries,
    ensure_built,
    ensure_node_built,
    node_platform_problem,
    platform_problem,
)
from tests.bed.controlplane import ControlPlane, start_control_plane
from tests.bed.images import Images, ensure_images, image_problem
from tests.bed.node import Node, start_node
from tests.bed.procs import BedError
from tests.bed.redis import RedisServer, start_redis
from tests.bed.session import Bed

__all__ = [
    "Bed",
    "BedError",
    "Binaries",
    "BuildError",
    "ControlPlane",
    "Images",
    "Node",
    "NodeBinaries",
    "RedisServer",
    "ensure_built",
    "ensure_images",
    "ensure_node_built",
    "image_problem",
    "node_platform_problem",
    "platform_problem",
    "start_control_plane",
    "start_node",
    "start_redis",
]
