"""Builds the test bed's programs from the pinned modules in hack/.

Control plane: kube-apiserver, kubectl, helm, etcd. Node (tests marked `node`):
kubelet, kube-controller-manager, kube-scheduler, kube-proxy (k8s.io/kubernetes at
the API server's version, hack/go.mod) and CoreDNS (hack/coredns/go.mod, its own
module so its dependencies never move the control plane's).

There are no prebuilt downloads on this machine, only the Go module proxy, so the
control plane is compiled from source once and cached under `.cache/bin/`. Each
binary carries a stamp (hash of hack/go.mod, go.sum, the flags and the Go
version); a warm run finds matching stamps and builds nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.bed.paths import BIN, HACK

# binary name -> Go package (all pinned by hack/go.mod)
PACKAGES: dict[str, str] = {
    "kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
    "etcd": "go.etcd.io/etcd/server/v3",
    "kubectl": "k8s.io/kubernetes/cmd/kubectl",
    "helm": "helm.sh/helm/v3/cmd/helm",
}
# The node's programs: binary name -> Go package. Built only for tests marked `node`.
NODE_PACKAGES: dict[str, str] = {
    "kubelet": "k8s.io/kubernetes/cmd/kubelet",
    "kube-controller-manager": "k8s.io/kubernetes/cmd/kube-controller-manager",
    "kube-scheduler": "k8s.io/kubernetes/cmd/kube-scheduler",
    "kube-proxy": "k8s.io/kubernetes/cmd/kube-proxy",
    "coredns": "github.com/kubetrade/kubetrade/hack/coredns",
}
# Binaries built in a module of their own (directory under hack/); the rest in hack/.
_MODULE_DIRS: dict[str, str] = {"coredns": "coredns"}
_ALL = {**PACKAGES, **NODE_PACKAGES}


class BuildError(RuntimeError):
    """`go build` failed; the message holds the command and its output."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the control-plane programs, ready to run."""

    kube_apiserver: Path
    etcd: Path
    kubectl: Path
    helm: Path


@dataclass(frozen=True)
class NodeBinaries:
    """Paths of the node's programs (kubelet & co. and CoreDNS), ready to run."""

    kubelet: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kube_proxy: Path
    coredns: Path


def _module_dir(name: str) -> Path:
    return HACK / _MODULE_DIRS[name] if name in _MODULE_DIRS else HACK


def _require(module: str, gomod: Path = HACK / "go.mod") -> str:
    match = re.search(rf"^\s*{re.escape(module)} (v\S+)", gomod.read_text(), re.M)
    if match is None:
        raise BuildError(f"{gomod} does not require {module}")
    return match.group(1)


def _ldflags(name: str) -> str:
    flags = ["-s", "-w"]
    if _ALL[name].startswith("k8s.io/kubernetes/"):
        version = _require("k8s.io/kubernetes")
        major, minor = version.lstrip("v").split(".")[:2]
        pkg = "k8s.io/component-base/version"
        flags += [
            f"-X {pkg}.gitVersion={version}",
            f"-X {pkg}.gitMajor={major}",
            f"-X {pkg}.gitMinor={minor}",
            f"-X {pkg}.gitTreeState=clean",
        ]
    elif name == "helm":
        flags.append(f"-X helm.sh/helm/v3/internal/version.version={_require('helm.sh/helm/v3')}")
    return " ".join(flags)


def go_binary() -> str | None:
    """The Go toolchain: on PATH, or where this machine kind installs it (CI's
    non-interactive shell may not read the .bashrc that adds it to PATH)."""
    found = shutil.which("go")
    if found is None:
        for candidate in ("/usr/local/go/bin/go", str(Path.home() / "go" / "bin" / "go")):
            if os.access(candidate, os.X_OK):
                return candidate
    return found


def platform_problem() -> str | None:
    """Why the binaries cannot exist here, or None. The only reason to skip a test."""
    if not sys.platform.startswith("linux"):
        return f"the test bed's control plane runs on Linux only (this is {sys.platform})"
    if go_binary() is None and not all((BIN / n).exists() for n in PACKAGES):
        return "no Go toolchain (`go`) to build kube-apiserver/etcd/kubectl/helm from hack/"
    return None


def node_platform_problem() -> str | None:
    """Why the node's binaries cannot exist here, or None."""
    problem = platform_problem()
    if problem is None and go_binary() is None and not all((BIN / n).exists() for n in _ALL):
        problem = "no Go toolchain (`go`) to build kubelet & co. and CoreDNS from hack/"
    return problem


def _go() -> str:
    go = go_binary()
    if go is None:
        raise BuildError("no Go toolchain (`go`) found on PATH or in /usr/local/go/bin")
    return go


def _go_version() -> str:
    out = subprocess.run([_go(), "env", "GOVERSION"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def _stamp(name: str, go_version: str) -> str:
    digest = hashlib.sha256()
    module = _module_dir(name)
    extra = sorted(module.glob("*.go")) if name in _MODULE_DIRS else []
    for part in (
        (module / "go.mod").read_bytes(),
        (module / "go.sum").read_bytes(),
        *(p.read_bytes() for p in extra),
        _ALL[name].encode(),
        _ldflags(name).encode(),
        go_version.encode(),
    ):
        digest.update(part)
        digest.update(b"\0")
    return digest.hexdigest()


@contextlib.contextmanager
def _build_lock() -> Iterator[None]:
    """Serialise builds between concurrent runs sharing one checkout."""
    BIN.mkdir(parents=True, exist_ok=True)
    with (BIN / ".build.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _paths() -> Binaries:
    return Binaries(
        kube_apiserver=BIN / "kube-apiserver",
        etcd=BIN / "etcd",
        kubectl=BIN / "kubectl",
        helm=BIN / "helm",
    )


def _node_paths() -> NodeBinaries:
    return NodeBinaries(
        kubelet=BIN / "kubelet",
        kube_controller_manager=BIN / "kube-controller-manager",
        kube_scheduler=BIN / "kube-scheduler",
        kube_proxy=BIN / "kube-proxy",
        coredns=BIN / "coredns",
    )


def _current(names: dict[str, str]) -> bool:
    if go_binary() is None:
        # No toolchain to compare against: trust whatever was built before.
        return all((BIN / n).exists() for n in names)
    go_version = _go_version()
    for name in names:
        stamp = BIN / f"{name}.stamp"
        if not (BIN / name).exists() or not stamp.exists():
            return False
        if stamp.read_text().strip() != _stamp(name, go_version):
            return False
    return True


def cached() -> Binaries | None:
    """The binaries if all are built and current, without building anything."""
    return _paths() if _current(PACKAGES) else None


def _build_one(name: str, go_version: str, force: bool, verbose: bool) -> None:
    target = BIN / name
    stamp = BIN / f"{name}.stamp"
    want = _stamp(name, go_version)
    if not force and target.exists() and stamp.exists() and stamp.read_text() == want:
        return
    env = dict(os.environ)
    # -mod=mod: hack/ has no vendor dir; -buildvcs=false: a fresh CI clone's
    # git state must not matter to the build.
    env["GOFLAGS"] = f"{env.get('GOFLAGS', '')} -mod=mod -buildvcs=false".strip()
    tmp = BIN / f".{name}.tmp"
    cmd = [
        _go(), "build", "-p", "2", "-trimpath",
        f"-ldflags={_ldflags(name)}", "-o", str(tmp), _ALL[name],
    ]  # fmt: skip
    if verbose:
        print(f"testbed: building {name} ({_ALL[name]})", file=sys.stderr, flush=True)
    started = time.monotonic()
    cwd = _module_dir(name)
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise BuildError(
            f"`{' '.join(cmd)}` in {cwd} failed ({result.returncode}):\n"
            f"{result.stdout}{result.stderr}"
        )
    tmp.replace(target)  # atomic: a reader never sees half a binary
    stamp.write_text(want)
    if verbose:
        took = time.monotonic() - started
        print(f"testbed: built {name} in {took:.0f}s", file=sys.stderr, flush=True)


def _ensure(names: dict[str, str], force: bool, verbose: bool) -> None:
    if not force and _current(names):
        return
    with _build_lock():
        go_version = _go_version()
        for name in names:
            _build_one(name, go_version, force, verbose)


def ensure_built(force: bool = False, verbose: bool = True) -> Binaries:
    """Build whatever is missing or stale; return the paths of all binaries."""
    problem = platform_problem()
    if problem is not None:
        raise BuildError(problem)
    _ensure(PACKAGES, force, verbose)
    return _paths()


def ensure_node_built(force: bool = False, verbose: bool = True) -> NodeBinaries:
    """Build the node's programs if missing or stale; return their paths."""
    problem = node_platform_problem()
    if problem is not None:
        raise BuildError(problem)
    _ensure(NODE_PACKAGES, force, verbose)
    return _node_paths()
