"""The test bed: real Redis and a real Kubernetes control plane on loopback.

`python -m tests.bed build` builds and caches the control-plane binaries;
`python -m tests.bed up` starts everything for use by hand. Tests get the servers
through the fixtures in tests/fixtures/bed.py.
"""

from tests.bed.build import Binaries, BuildError, ensure_built, platform_problem
from tests.bed.controlplane import ControlPlane, start_control_plane
from tests.bed.procs import BedError
from tests.bed.redis import RedisServer, start_redis
from tests.bed.session import Bed

__all__ = [
    "Bed",
    "BedError",
    "Binaries",
    "BuildError",
    "ControlPlane",
    "RedisServer",
    "ensure_built",
    "platform_problem",
    "start_control_plane",
    "start_redis",
]
