"""`python -m tests.bed build | up | reap`: the test bed by hand.

`build` is what `make testbed` runs before pytest; `up` gives a developer the same
servers the tests get, until Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

from tests.bed.build import BuildError, ensure_built, ensure_node_built, node_platform_problem
from tests.bed.images import ensure_images, image_problem
from tests.bed.node import reap_node
from tests.bed.paths import BIN
from tests.bed.procs import BedError, reap_stale
from tests.bed.session import Bed


def _build(args: argparse.Namespace) -> int:
    started = time.monotonic()
    try:
        bins = ensure_built(force=args.force)
        took = time.monotonic() - started
        print(f"testbed: binaries ready in {took:.1f}s: {bins.kube_apiserver.parent}")
        if args.no_node:
            return 0
        problem = node_platform_problem() or image_problem()
        if problem is not None:  # the node tests skip with the same reason
            print(f"testbed: no node here: {problem}", file=sys.stderr)
            return 0
        started = time.monotonic()
        ensure_node_built(force=args.force)
        images = ensure_images()
        took = time.monotonic() - started
        print(f"testbed: node binaries and images ready in {took:.1f}s: {images.project.name}")
    except BuildError as err:
        print(f"testbed: build failed: {err}", file=sys.stderr)
        return 1
    return 0


def _up(args: argparse.Namespace) -> int:
    bed = Bed()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        redis = bed.redis()
        if args.node:
            node = bed.node()
            print(f"# node {node.cp.url} ready in {node.started_in:.1f}s", file=sys.stderr)
            print(f"# project image: {node.images.project.name}", file=sys.stderr)
        cp = None if args.redis_only else (bed.node().cp if args.node else bed.control_plane())
        if cp is not None:
            print(f"# control plane ready in {cp.started_in:.1f}s", file=sys.stderr)
            print(f"export KUBECONFIG={cp.kubeconfig}")
            print(f"export TESTBED_KUBECTL={cp.binaries.kubectl}")
            print(f"export TESTBED_HELM={cp.binaries.helm}")
        print(f"export REDIS_URL={redis.url}", flush=True)
        print("# Ctrl-C stops the servers", file=sys.stderr, flush=True)
        stop.wait()
    except KeyboardInterrupt:
        pass
    except (BedError, BuildError) as err:
        print(f"testbed: {err}", file=sys.stderr)
        return 1
    finally:
        bed.stop()
    return 0


def _reap(args: argparse.Namespace) -> int:
    for line in reap_stale():
        print(f"testbed: killed stale {line}")
    if os.geteuid() == 0:  # a crashed node's containers, mounts, netns, bridges, rules
        free = reap_node(BIN / "kube-proxy")
        print("testbed: node cleaned up" if free else "testbed: a live run holds the node")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bed", description=__doc__)
    sub = parser.add_subparsers(required=True)
    p = sub.add_parser("build", help="build and cache kube-apiserver, etcd, kubectl, helm")
    p.add_argument("--force", action="store_true", help="rebuild even when the stamps match")
    p.add_argument("--no-node", action="store_true", help="skip the node's binaries and images")
    p.set_defaults(func=_build)
    p = sub.add_parser("up", help="start Redis and the control plane until Ctrl-C")
    p.add_argument("--redis-only", action="store_true", help="start Redis only")
    p.add_argument("--node", action="store_true", help="a real node: kubelet, containerd, ...")
    p.set_defaults(func=_up)
    p = sub.add_parser("reap", help="kill servers left by crashed runs")
    p.set_defaults(func=_reap)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
