"""etcd + kube-apiserver on loopback, started the way controller-runtime's envtest does.

No kubelet, scheduler or controller-manager run: the bed is for API behaviour (CRDs,
validation, RBAC, watches), which is all the operator and API code talk to. One
consequence: a deleted namespace stays Terminating (no namespace controller).
"""

from __future__ import annotations

import base64
import functools
import http.client
import json
import ssl
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.bed.build import Binaries
from tests.bed.certs import CertAuthority, KeyPair, service_account_key
from tests.bed.procs import BedError, Managed, free_port, new_workdir

SERVICE_CIDR = "10.0.0.0/24"


def _etcd_healthy(port: int) -> bool:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        conn.request("GET", "/health")
        resp = conn.getresponse()
        return resp.status == 200 and json.loads(resp.read()).get("health") == "true"
    finally:
        conn.close()


def _https_ok(port: int, path: str, ctx: ssl.SSLContext, host: str = "127.0.0.1") -> bool:
    conn = http.client.HTTPSConnection(host, port, timeout=2, context=ctx)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return resp.status == 200
    finally:
        conn.close()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(path: Path, server: str, ca: Path, client: KeyPair, user: str) -> Path:
    """A self-contained kubeconfig (data embedded) so it works copied anywhere."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "testbed",
                "cluster": {"server": server, "certificate-authority-data": _b64(ca)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert),
                    "client-key-data": _b64(client.key),
                },
            }
        ],
        "contexts": [{"name": "testbed", "context": {"cluster": "testbed", "user": user}}],
        "current-context": "testbed",
        "preferences": {},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)
    return path


@dataclass
class Etcd:
    """A single-member etcd for one API server."""

    url: str
    process: Managed

    def stop(self) -> None:
        self.process.stop()


def start_etcd(exe: Path, timeout: float = 30.0) -> Etcd:
    last: BedError | None = None
    for _ in range(3):
        client, peer = free_port(), free_port()
        workdir = new_workdir("etcd")
        peer_url = f"http://127.0.0.1:{peer}"
        client_url = f"http://127.0.0.1:{client}"
        argv = [
            str(exe),
            "--name=testbed",
            f"--data-dir={workdir / 'data'}",
            f"--listen-client-urls={client_url}",
            f"--advertise-client-urls={client_url}",
            f"--listen-peer-urls={peer_url}",
            f"--initial-advertise-peer-urls={peer_url}",
            f"--initial-cluster=testbed={peer_url}",
            "--log-level=warn",
            # Durability is worthless for a throwaway store; fsync is the slow part.
            "--unsafe-no-fsync",
        ]
        proc = Managed("etcd", argv, workdir)
        try:
            proc.wait_until(functools.partial(_etcd_healthy, client), timeout, "healthy")
        except BedError as err:
            proc.stop()
            last = err
            continue
        return Etcd(url=client_url, process=proc)
    assert last is not None
    raise last


@dataclass
class ControlPlane:
    """A running API server; hand `kubeconfig` (admin, system:masters) to clients."""

    url: str
    port: int
    ca_path: Path
    kubeconfig: Path
    admin: KeyPair
    binaries: Binaries
    etcd: Etcd
    process: Managed
    _ca: CertAuthority = field(repr=False)
    started_in: float = 0.0
    # The key that signs ServiceAccount tokens (the controller-manager needs it too).
    sa_key: Path | None = None

    @property
    def workdir(self) -> Path:
        return self.process.workdir

    def kubeconfig_for(self, user: str, groups: Sequence[str] = ()) -> Path:
        """A kubeconfig authenticating as `user` in `groups` (x509 client cert).

        RBAC applies to it, unlike the admin kubeconfig (system:masters).
        """
        pair = self._ca.client(user, tuple(groups))
        safe = pair.cert.stem.removeprefix("client-")
        return write_kubeconfig(
            self.workdir / f"kubeconfig-{safe}", self.url, self.ca_path, pair, user
        )

    def kubeconfig_for_service_account(self, namespace: str, name: str) -> Path:
        """A kubeconfig the API server sees as that ServiceAccount (RBAC subject kind
        ServiceAccount matches it)."""
        return self.kubeconfig_for(
            f"system:serviceaccount:{namespace}:{name}",
            [
                "system:serviceaccounts",
                f"system:serviceaccounts:{namespace}",
                "system:authenticated",
            ],
        )

    def kopf_connection(self, default_namespace: str | None = None) -> Any:
        """A `kopf.ConnectionInfo` for the admin user, to return from an
        `@kopf.on.login` handler of an operator run against the bed."""
        import kopf  # only tests that run kopf pay for importing it

        return kopf.ConnectionInfo(
            server=self.url,
            ca_path=str(self.ca_path),
            certificate_path=str(self.admin.cert),
            private_key_path=str(self.admin.key),
            default_namespace=default_namespace,
        )

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        kubeconfig: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run the bed's kubectl against this API server."""
        cfg = kubeconfig or self.kubeconfig
        return subprocess.run(
            [
                str(self.binaries.kubectl),
                f"--kubeconfig={cfg}",
                # Discovery cache inside the run dir, not ~/.kube: removed with it.
                f"--cache-dir={self.workdir / 'kubectl-cache'}",
                *args,
            ],
            input=input,
            capture_output=True,
            text=True,
            check=check,
            timeout=120,
        )

    def ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_path))
        ctx.load_cert_chain(str(self.admin.cert), str(self.admin.key))
        return ctx

    def stop(self) -> None:
        self.process.stop()
        self.etcd.stop()


def _node_flags(node_ip: str | None, port: int) -> list[str]:
    """The API server's flags: envtest-like without a node, a real cluster's with one."""
    if node_ip is None:
        return [
            f"--service-account-issuer=https://127.0.0.1:{port}",
            "--authorization-mode=RBAC",
            # envtest's choice: no controller-manager creates ServiceAccounts, so
            # the admission plugin would refuse every pod.
            "--disable-admission-plugins=ServiceAccount",
            # Nothing else runs to need the endpoints of the `kubernetes` Service.
            "--endpoint-reconciler-type=none",
        ]
    return [
        # Pods reach the API server through the `kubernetes` Service (kube-proxy DNATs
        # 10.0.0.1:443 to this address), so it listens on the node's address, not loopback.
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        # Node: the kubelet's own objects; RBAC: everyone else.
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",
        # `kubectl logs/exec`: reach the kubelet by the node's InternalIP, not its
        # hostname (which this machine's DNS does not know).
        "--kubelet-preferred-address-types=InternalIP",
    ]


def start_control_plane(
    binaries: Binaries, timeout: float = 90.0, node_ip: str | None = None
) -> ControlPlane:
    """Start etcd and kube-apiserver; return once /readyz answers 200.

    `node_ip`: the API server serves on that address (and advertises it) for a real
    node's kubelet and pods; ServiceAccount admission, endpoint reconciling and the
    Node authorizer are on, as in a real cluster.
    """
    started = time.monotonic()
    etcd = start_etcd(binaries.etcd)
    try:
        last: BedError | None = None
        for _ in range(3):
            port = free_port()
            workdir = new_workdir("kube-apiserver")
            ca = CertAuthority(workdir)
            serving = ca.serving(extra_ips=(node_ip,) if node_ip else ())
            admin = ca.client("admin", ("system:masters",))
            sa_key = service_account_key(workdir)
            host = node_ip or "127.0.0.1"
            url = f"https://{host}:{port}"
            argv = [
                str(binaries.kube_apiserver),
                f"--etcd-servers={etcd.url}",
                f"--bind-address={host}",
                f"--advertise-address={host}",
                f"--secure-port={port}",
                f"--cert-dir={workdir}",
                f"--tls-cert-file={serving.cert}",
                f"--tls-private-key-file={serving.key}",
                f"--client-ca-file={ca.cert_path}",
                f"--service-account-key-file={sa_key}",
                f"--service-account-signing-key-file={sa_key}",
                f"--service-cluster-ip-range={SERVICE_CIDR}",
                "--allow-privileged=true",
                *_node_flags(node_ip, port),
                "--v=0",
            ]
            proc = Managed("kube-apiserver", argv, workdir)
            kubeconfig = write_kubeconfig(workdir / "kubeconfig", url, ca.cert_path, admin, "admin")
            ctx = ssl.create_default_context(cafile=str(ca.cert_path))
            ctx.load_cert_chain(str(admin.cert), str(admin.key))
            try:
                proc.wait_until(
                    functools.partial(_https_ok, port, "/readyz", ctx, host),
                    timeout,
                    "ready (/readyz)",
                )
            except BedError as err:
                proc.stop()
                last = err
                if "address already in use" in str(err):
                    continue
                raise
            return ControlPlane(
                url=url,
                port=port,
                ca_path=ca.cert_path,
                kubeconfig=kubeconfig,
                admin=admin,
                binaries=binaries,
                etcd=etcd,
                process=proc,
                _ca=ca,
                started_in=time.monotonic() - started,
                sa_key=sa_key,
            )
        assert last is not None
        raise last
    except BaseException:
        etcd.stop()
        raise
