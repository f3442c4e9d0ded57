"""The node's network and the clean-up of everything a node leaves on the machine.

The node is one per machine (its bridges, addresses, ports and cgroups are global), so
it runs under a machine-wide lock, and every start first removes what a crashed run
left: container processes and shims, mounts under the node's directories, the pods'
network namespaces and veths, kube-proxy's iptables rules, our guard chain and the
bridges. A record in /run names the directories of the last node, so a run from
another checkout cleans up after this one too.

Addresses (none leaves this machine):
- node: 10.200.0.1/32 on bridge `ktnode0` (this kernel cannot create `dummy` links;
  the kubelet refuses a loopback node IP); the API server, kubelet and CoreDNS listen
  there.
- pods: 10.244.0.0/24 on bridge `ktcni0` (CNI bridge + host-local), no masquerade, and
  a FORWARD guard that drops anything from the pod range to outside it.
- Services: 10.0.0.0/24 (kube-proxy's iptables DNAT; CoreDNS is reached directly at the
  node address as the pods' nameserver).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import IO

from tests.bed.procs import BedError

NODE_NAME = "kubetrade-bed-node"
NODE_BRIDGE = "ktnode0"
NODE_IP = "10.200.0.1"
POD_BRIDGE = "ktcni0"
POD_CIDR = "10.244.0.0/24"
GUARD_CHAIN = "KUBETRADE-BED-GUARD"
CGROUP_ROOT = "kubetrade-bed"
LOCK = Path("/run/lock/kubetrade-bed-node.lock")
RECORD = Path("/run/kubetrade-bed-node.json")


def sh(*cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a system command; with check, a failure raises BedError with its output."""
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise BedError(f"`{' '.join(cmd)}` failed ({result.returncode}): {result.stderr.strip()}")
    return result


def machine_lock(timeout: float) -> IO[str]:
    """Take the machine-wide node lock (another run's node: wait up to `timeout` s).
    Closing the returned file releases it; so does the death of this process."""
    LOCK.parent.mkdir(parents=True, exist_ok=True)
    fh = LOCK.open("w")
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fh
        except BlockingIOError:
            if time.monotonic() > deadline:
                fh.close()
                raise BedError(
                    f"another test run holds the node ({LOCK}) for over {timeout:.0f}s"
                ) from None
            time.sleep(0.5)


def _links() -> list[dict[str, object]]:
    out = sh("ip", "-j", "link", "show").stdout
    return list(json.loads(out or "[]"))


def setup_network() -> str:
    """Create the node bridge with the node address and the FORWARD guard; returns
    the previous net.ipv4.ip_forward, restored by `teardown`."""
    forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    sh("ip", "link", "add", NODE_BRIDGE, "type", "bridge")
    sh("ip", "addr", "add", f"{NODE_IP}/32", "dev", NODE_BRIDGE)
    sh("ip", "link", "set", NODE_BRIDGE, "up")
    # The CNI bridge turns forwarding on (isGateway); this chain makes sure no packet
    # of a pod is ever forwarded out of the pod range (after kube-proxy's DNAT, a
    # Service's backends are pods or the node itself, which is INPUT, not FORWARD).
    sh("iptables", "-w", "-N", GUARD_CHAIN)
    sh("iptables", "-w", "-A", GUARD_CHAIN, "-s", POD_CIDR, "!", "-d", POD_CIDR, "-j", "DROP")
    sh("iptables", "-w", "-I", "FORWARD", "1", "-j", GUARD_CHAIN)
    return forward


def write_record(dirs: list[Path], containerd_sock: Path, forward: str) -> None:
    RECORD.write_text(
        json.dumps(
            {
                "dirs": [str(d) for d in dirs],
                "containerd": str(containerd_sock),
                "ip_forward": forward,
                "owner": os.getpid(),
            }
        )
    )


def _kill_cgroup_tree() -> None:
    """SIGKILL every process in the kubelet's cgroups, then remove the cgroups."""
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        root = hierarchy / CGROUP_ROOT
        if not root.is_dir():
            continue
        groups = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
        for group in [*groups, root]:
            with contextlib.suppress(OSError):
                for pid in (group / "cgroup.procs").read_text().split():
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(int(pid), signal.SIGKILL)
    time.sleep(0.2)
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        root = hierarchy / CGROUP_ROOT
        if root.is_dir():
            groups = sorted((p for p in root.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts))
            for group in [*groups, root]:
                with contextlib.suppress(OSError):
                    group.rmdir()


def _kill_shims(containerd_sock: str) -> None:
    """containerd-shim processes outlive containerd; kill the ones of our socket."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "containerd-shim" in cmd and containerd_sock in cmd:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def _unmount_under(dirs: list[str]) -> None:
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for target in sorted(mounts, key=len, reverse=True):
        target = target.replace("\\040", " ")
        if any(target == d or target.startswith(d.rstrip("/") + "/") for d in dirs):
            sh("umount", "-l", target, check=False)


def _remove_netns() -> None:
    netns = Path("/var/run/netns")
    if netns.is_dir():
        for ns in netns.iterdir():
            if ns.name.startswith("cni-"):
                sh("ip", "netns", "del", ns.name, check=False)


def _remove_links() -> None:
    for link in _links():
        name = str(link.get("ifname", ""))
        if link.get("master") == POD_BRIDGE or name in (POD_BRIDGE, NODE_BRIDGE):
            sh("ip", "link", "del", name, check=False)


def _remove_iptables(kube_proxy: Path | None) -> None:
    """kube-proxy's and the kubelet's chains (KUBE-*), the CNI plugin's (CNI-*) and our
    guard, from every table: each table is saved, stripped of them and restored."""
    if kube_proxy is not None and kube_proxy.exists():
        sh(str(kube_proxy), "--cleanup", check=False, timeout=60)
    ours = ("KUBE-", "CNI-", GUARD_CHAIN)
    for table in ("filter", "nat", "mangle"):
        saved = sh("iptables-save", "-t", table, check=False).stdout
        if not any(mark in saved for mark in ours):
            continue
        kept = [line for line in saved.splitlines() if not any(m in line for m in ours)]
        subprocess.run(["iptables-restore", "-w"], input="\n".join(kept) + "\n", text=True,
                       capture_output=True, timeout=60)  # fmt: skip


def teardown(dirs: list[str], containerd_sock: str, kube_proxy: Path | None) -> None:
    """Remove everything a node (running or crashed) left on the machine."""
    _kill_cgroup_tree()
    if containerd_sock:
        _kill_shims(containerd_sock)
    _unmount_under(dirs)
    _remove_netns()
    _remove_links()
    _remove_iptables(kube_proxy)
    if RECORD.exists():
        with contextlib.suppress(OSError, ValueError):
            forward = json.loads(RECORD.read_text()).get("ip_forward")
            if forward in ("0", "1"):
                Path("/proc/sys/net/ipv4/ip_forward").write_text(forward)
        RECORD.unlink(missing_ok=True)


def reap_previous(kube_proxy: Path | None, dirs: list[str]) -> None:
    """Clean up after a node whose run died (called with the machine lock held)."""
    containerd = ""
    if RECORD.exists():
        with contextlib.suppress(OSError, ValueError):
            record = json.loads(RECORD.read_text())
            dirs = [*dirs, *record.get("dirs", [])]
            containerd = str(record.get("containerd", ""))
    teardown(dirs, containerd, kube_proxy)
