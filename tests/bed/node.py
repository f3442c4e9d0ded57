"""A real single-node cluster from parts ("Kubernetes the hard way", no registry).

On top of a control plane of its own (etcd + kube-apiserver serving on the node
address, ServiceAccount admission and the Node authorizer on), it starts containerd
(CRI plugin, its own root/state/socket under `.cache/node/`), the kubelet (cgroupfs,
cgroup v1 allowed, swap allowed), kube-proxy (iptables), kube-scheduler,
kube-controller-manager (ServiceAccount tokens, Deployments, Jobs, StatefulSets, GC,
PersistentVolume binding) and CoreDNS as a host process answering cluster.local.
Images come from tests/bed/images.py through `ctr images import`.

What it is not: NetworkPolicies are not enforced (the CNI bridge plugin has no policy
engine); there is no storage provisioner (the bed creates hostPath PersistentVolumes
for claims to bind); one node only.
"""

from __future__ import annotations

import contextlib
import functools
import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from tests.bed.build import Binaries, NodeBinaries
from tests.bed.controlplane import ControlPlane, start_control_plane
from tests.bed.images import Images
from tests.bed.nodenet import (
    CGROUP_ROOT,
    NODE_IP,
    NODE_NAME,
    POD_BRIDGE,
    POD_CIDR,
    machine_lock,
    reap_previous,
    setup_network,
    teardown,
    write_record,
)
from tests.bed.paths import CACHE
from tests.bed.procs import BedError, Managed, free_port

NODE_DIR = CACHE / "node"
# Kept between runs: containerd's content store and snapshots (the imported images).
CONTAINERD_ROOT = NODE_DIR / "containerd-root"
# Per run: containerd state, the kubelet's root, CNI config and IPAM, logs.
RUN_DIR = NODE_DIR / "run"
PV_DIR = NODE_DIR / "volumes"
LOCK_WAIT = 240.0


def _containerd_config(run: Path, sock: Path, images: Images) -> str:
    return f"""version = 2
root = "{CONTAINERD_ROOT}"
state = "{run / "containerd-state"}"
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "{CONTAINERD_ROOT / "opt"}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{images.pause.name}"
  # This machine forbids lowering oom_score_adj (the kubelet asks -998 for the pause
  # container); without this every sandbox fails with "can't get final child's PID".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{run / "cni"}"
    max_conf_num = 1
"""


def _cni_config(run: Path) -> dict[str, Any]:
    return {
        "cniVersion": "0.4.0",
        "name": "kubetrade-bed",
        "plugins": [
            {
                "type": "bridge",
                "bridge": POD_BRIDGE,
                "isGateway": True,
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(run / "cni-ipam"),
                },
            }
        ],
    }


def _kubelet_config(run: Path, sock: Path, healthz: int) -> dict[str, Any]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz,
        "authentication": {"anonymous": {"enabled": True}, "webhook": {"enabled": False}},
        "authorization": {"mode": "AlwaysAllow"},
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": f"/{CGROUP_ROOT}",
        "failCgroupV1": False,
        "failSwapOn": False,
        "containerRuntimeEndpoint": f"unix://{sock}",
        "clusterDNS": [NODE_IP],
        "clusterDomain": "cluster.local",
        "resolvConf": str(run / "resolv.conf"),
        "podCIDR": POD_CIDR,
        "enforceNodeAllocatable": [],
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "imagefs.available": "1%",
        },
        # Images cannot be pulled again here: never garbage-collect them.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "localStorageCapacityIsolation": False,
        "serializeImagePulls": False,
        "registerNode": True,
        "syncFrequency": "10s",
        "fileCheckFrequency": "10s",
        "nodeStatusUpdateFrequency": "5s",
    }


def _kube_proxy_config(kubeconfig: Path) -> dict[str, Any]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "bindAddress": NODE_IP,
        "healthzBindAddress": f"127.0.0.1:{free_port()}",
        "metricsBindAddress": f"127.0.0.1:{free_port()}",
        # Pod -> Service -> pod on the same bridge: masquerade so replies come back
        # through the host's conntrack.
        "iptables": {"masqueradeAll": True},
        # Leave the machine's conntrack limits alone (a sysctl write this VM may refuse).
        "conntrack": {"maxPerCore": 0, "min": 0},
        "nodePortAddresses": [f"{NODE_IP}/32"],
        "detectLocalMode": "ClusterCIDR",
    }


def _corefile(kubeconfig: Path, ready: int, health: int) -> str:
    return f""".:53 {{
    bind {NODE_IP}
    errors
    ready 127.0.0.1:{ready}
    health 127.0.0.1:{health}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        ttl 5
    }}
    cache 5
}}
"""


def _http_ok(port: int, path: str) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return s.recv(64).split(b" ")[1:2] == [b"200"]


@dataclass
class Node:
    """A running single-node cluster: `.cp` is its control plane (kubeconfig, kubectl)."""

    cp: ControlPlane
    binaries: NodeBinaries
    images: Images
    procs: list[Managed]
    lock: IO[str] = field(repr=False)
    started_in: float = 0.0

    @property
    def kubeconfig(self) -> Path:
        return self.cp.kubeconfig

    @property
    def ip(self) -> str:
        """The node's address (on its own bridge, never routed off this machine): what
        pods reach on the host. A test server for pods (the fake Binance) listens here,
        not on 0.0.0.0."""
        return NODE_IP

    def kubectl(self, *args: str, input: str | None = None, check: bool = True,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:  # fmt: skip
        """kubectl against the node's API server; a failure with check raises with stderr."""
        cmd = [str(self.cp.binaries.kubectl), f"--kubeconfig={self.kubeconfig}",
               f"--cache-dir={self.cp.workdir / 'kubectl-cache'}", *args]  # fmt: skip
        result = subprocess.run(cmd, input=input, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise BedError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result

    def helm(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
        """helm against the node's API server (HELM_* dirs under the run dir)."""
        run = self.cp.workdir
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(run),
               "HELM_CACHE_HOME": str(run / "helm-cache"),
               "HELM_CONFIG_HOME": str(run / "helm-config"),
               "HELM_DATA_HOME": str(run / "helm-data")}  # fmt: skip
        cmd = [str(self.cp.binaries.helm), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if result.returncode != 0:
            raise BedError(f"helm {' '.join(args)} failed: {result.stdout}{result.stderr}")
        return result

    def hostpath_volume(self, name: str, size: str = "1Gi") -> None:
        """A PersistentVolume on a directory of this machine (no provisioner runs here), for
        one claim without a storage class to bind; removed with the node's run."""
        path = PV_DIR / name
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        path.chmod(0o777)  # hostPath ignores fsGroup: any pod user may write
        pv = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": name},
            "spec": {
                "capacity": {"storage": size},
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": str(path), "type": "Directory"},
            },
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(pv))

    def logs(self) -> str:
        """The tails of the node's own logs, for a failing test's message."""
        return "\n".join(f"== {p.name}\n{p.log_tail(15)}" for p in self.procs)

    def stop(self) -> None:
        """Stop every process, then remove containers, mounts, netns, links, rules."""
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop(remove_dir=False)
        sock = RUN_DIR / "containerd.sock"
        teardown([str(RUN_DIR), str(CONTAINERD_ROOT)], str(sock), self.binaries.kube_proxy)
        self.cp.stop()
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        shutil.rmtree(PV_DIR, ignore_errors=True)
        self.lock.close()


def _start(name: str, argv: list[str], run: Path) -> Managed:
    workdir = run / name
    workdir.mkdir(parents=True, exist_ok=True)
    return Managed(name, argv, workdir)


def _import_images(ctr: list[str], images: Images) -> None:
    have = subprocess.run([*ctr, "images", "ls", "-q"], capture_output=True, text=True, check=True)
    names = set(have.stdout.split())
    wanted = {image.name for image in images.all()}
    for name in names:  # earlier builds of the project image
        if name.startswith(images.project.repository + ":") and name not in wanted:
            subprocess.run([*ctr, "images", "rm", "--sync", name], capture_output=True)
    for image in images.all():
        if image.name not in names:
            subprocess.run([*ctr, "images", "import", str(image.archive)],
                           capture_output=True, text=True, check=True, timeout=600)  # fmt: skip


def _start_containerd(run: Path, images: Images) -> Managed:
    sock = run / "containerd.sock"
    (run / "cni").mkdir(parents=True)
    (run / "cni" / "10-kubetrade-bed.conflist").write_text(json.dumps(_cni_config(run)))
    config = run / "containerd.toml"
    config.write_text(_containerd_config(run, sock, images))
    proc = _start("containerd", ["containerd", "--config", str(config)], run)
    ctr = ["ctr", "--address", str(sock), "-n", "k8s.io"]

    def answers() -> bool:
        return subprocess.run([*ctr, "version"], capture_output=True, timeout=10).returncode == 0

    proc.wait_until(answers, 60, "answering on its socket")
    # Containers of a crashed run are still in the kept metadata: remove them.
    for kind in ("tasks", "containers"):
        listed = subprocess.run([*ctr, kind, "ls", "-q"], capture_output=True, text=True)
        for cid in listed.stdout.split():
            if kind == "tasks":
                subprocess.run([*ctr, "tasks", "kill", "-s", "SIGKILL", cid], capture_output=True)
                subprocess.run([*ctr, "tasks", "rm", "-f", cid], capture_output=True)
            else:
                subprocess.run([*ctr, "containers", "rm", cid], capture_output=True)
    _import_images(ctr, images)
    return proc


def _node_ready(cp: ControlPlane) -> bool:
    out = cp.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
    if out.returncode != 0:
        return False
    conds = json.loads(out.stdout).get("status", {}).get("conditions", [])
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conds)


def _start_kubelet(cp: ControlPlane, exe: Path, run: Path) -> Managed:
    (run / "resolv.conf").write_text(f"nameserver {NODE_IP}\n")
    for hierarchy in Path("/sys/fs/cgroup").iterdir():
        if hierarchy.is_dir():
            (hierarchy / CGROUP_ROOT).mkdir(exist_ok=True)
    cpuset = Path("/sys/fs/cgroup/cpuset")
    for knob in ("cpuset.cpus", "cpuset.mems"):  # a new cpuset cgroup starts empty
        if (cpuset / knob).exists():
            (cpuset / CGROUP_ROOT / knob).write_text((cpuset / knob).read_text())
    config = run / "kubelet.yaml"
    config.write_text(yaml.safe_dump(_kubelet_config(run, run / "containerd.sock", free_port())))
    kubeconfig = cp.kubeconfig_for(f"system:node:{NODE_NAME}", ["system:nodes"])
    argv = [str(exe), f"--config={config}", f"--kubeconfig={kubeconfig}",
            f"--root-dir={run / 'kubelet-root'}", f"--cert-dir={run / 'kubelet-pki'}",
            f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}", "--v=1"]  # fmt: skip
    proc = _start("kubelet", argv, run)
    proc.wait_until(functools.partial(_node_ready, cp), 120, f"node {NODE_NAME} Ready")
    return proc


def _start_controllers(cp: ControlPlane, bins: NodeBinaries, run: Path) -> list[Managed]:
    assert cp.sa_key is not None
    cm = cp.kubeconfig_for("system:kube-controller-manager")
    sched = cp.kubeconfig_for("system:kube-scheduler")
    proxy = cp.kubeconfig_for("system:kube-proxy")
    (run / "kube-proxy.yaml").write_text(yaml.safe_dump(_kube_proxy_config(proxy)))
    procs = [
        _start(
            "kube-controller-manager",
            [
                str(bins.kube_controller_manager),
                f"--kubeconfig={cm}",
                f"--authentication-kubeconfig={cm}",
                f"--authorization-kubeconfig={cm}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                f"--service-account-private-key-file={cp.sa_key}",
                f"--root-ca-file={cp.ca_path}",
                "--use-service-account-credentials=true",
                "--leader-elect=false",
                f"--cluster-cidr={POD_CIDR}",
                "--allocate-node-cidrs=false",
                "--controllers=*",
                "--concurrent-gc-syncs=5",
                "--v=1",
            ],
            run,
        ),
        _start(
            "kube-scheduler",
            [
                str(bins.kube_scheduler),
                f"--kubeconfig={sched}",
                f"--authentication-kubeconfig={sched}",
                f"--authorization-kubeconfig={sched}",
                "--bind-address=127.0.0.1",
                f"--secure-port={free_port()}",
                "--leader-elect=false",
                "--v=1",
            ],
            run,
        ),
        _start(
            "kube-proxy",
            [str(bins.kube_proxy), f"--config={run / 'kube-proxy.yaml'}", "--v=1"],
            run,
        ),
    ]
    dns = cp.kubeconfig_for("system:coredns", ["system:authenticated"])
    cp.kubectl("apply", "-f", "-", input=_COREDNS_RBAC)
    ready, health = free_port(), free_port()
    (run / "Corefile").write_text(_corefile(dns, ready, health))
    coredns = _start("coredns", [str(bins.coredns), "-conf", str(run / "Corefile")], run)
    coredns.wait_until(functools.partial(_http_ok, ready, "/ready"), 60, "ready")
    return [*procs, coredns]


_COREDNS_RBAC = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: User, name: "system:coredns"}]
"""


def _wait_cluster_usable(cp: ControlPlane, timeout: float = 120) -> None:
    """The controller-manager has made the default ServiceAccount (pods can be admitted)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cp.kubectl("get", "serviceaccount", "default", check=False).returncode == 0:
            return
        time.sleep(0.5)
    raise BedError("no default ServiceAccount after 120s: is kube-controller-manager running?")


def start_node(binaries: Binaries, node_bins: NodeBinaries, images: Images) -> Node:
    """Start the whole node; on any failure stop what started and clean up."""
    started = time.monotonic()
    lock = machine_lock(LOCK_WAIT)
    procs: list[Managed] = []
    cp: ControlPlane | None = None
    try:
        reap_previous(node_bins.kube_proxy, [str(RUN_DIR), str(CONTAINERD_ROOT)])
        shutil.rmtree(RUN_DIR, ignore_errors=True)
        RUN_DIR.mkdir(parents=True)
        forward = setup_network()
        write_record([RUN_DIR, CONTAINERD_ROOT], RUN_DIR / "containerd.sock", forward)
        cp = start_control_plane(binaries, node_ip=NODE_IP)
        procs.append(_start_containerd(RUN_DIR, images))
        procs.append(_start_kubelet(cp, node_bins.kubelet, RUN_DIR))
        procs += _start_controllers(cp, node_bins, RUN_DIR)
        _wait_cluster_usable(cp)
    except BaseException:
        for proc in reversed(procs):
            proc.stop(remove_dir=False)
        sock = str(RUN_DIR / "containerd.sock")
        teardown([str(RUN_DIR), str(CONTAINERD_ROOT)], sock, node_bins.kube_proxy)
        if cp is not None:
            cp.stop()
        lock.close()
        raise
    return Node(cp, node_bins, images, procs, lock, time.monotonic() - started)


def reap_node(kube_proxy: Path | None) -> bool:
    """Clean up after a crashed node if no live run holds it; True when the lock was free."""
    try:
        lock = machine_lock(0)
    except BedError:
        return False
    try:
        reap_previous(kube_proxy, [str(RUN_DIR), str(CONTAINERD_ROOT)])
        shutil.rmtree(RUN_DIR, ignore_errors=True)
    finally:
        lock.close()
    return True
