"""The project's image carries the bytecode of its code and dependencies.

Its pods run on a read-only root filesystem with PYTHONDONTWRITEBYTECODE, so Python
can never cache what it compiles: an image without .pyc files compiles kubetrade, ccxt,
kubernetes, pydantic, ... from source at every pod start of the operator, a runner or a
Job (on this node that was the larger part of a runner pod's start; the figures are in
the issue 16 note). The Dockerfile compiles them at build time.
"""

from __future__ import annotations

import pytest

from tests.bed import Node
from tests.e2e.node.helpers import restricted_namespace, run_pod

# The first test of a session pays for starting the node (and building a stale image).
pytestmark = [pytest.mark.node, pytest.mark.timeout(1500)]

# Every module of the virtualenv has its .pyc, and what a pod imports loads from it.
PROBE = """
import importlib, os, pathlib, sys
from importlib.util import cache_from_source
lib = pathlib.Path(sys.prefix, "lib")
sources = [p for p in lib.rglob("*.py")]
missing = [str(p) for p in sources if not os.path.exists(cache_from_source(str(p)))]
print("sources", len(sources))
print("missing", len(missing), *missing[:5])
for name in ("kubetrade.cli", "kubetrade.runner.assembly", "kubetrade.operator.main",
             "kubetrade.api.app", "ccxt.async_support.binance", "kubernetes.client"):
    spec = importlib.import_module(name).__spec__
    print("module", name, os.path.exists(spec.cached or ""))
"""


def test_every_module_of_the_image_has_its_bytecode(node: Node) -> None:
    ns = restricted_namespace(node, "kt-image")
    out = run_pod(node, ns, "bytecode", node.images.project.name, ["python", "-c", PROBE])
    rows = [line.split() for line in out.splitlines() if line.strip()]
    counts = {row[0]: row[1:] for row in rows if row[0] in ("sources", "missing")}
    assert int(counts["sources"][0]) > 1000, out  # the virtualenv with its dependencies
    assert counts["missing"][0] == "0", out
    modules = [row for row in rows if row[0] == "module"]
    assert len(modules) == 6 and all(m[2] == "True" for m in modules), out
