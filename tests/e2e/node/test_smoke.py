"""The real node's basics: the project's image (built from the Dockerfile as it is)
runs in a namespace enforcing the `restricted` Pod Security Standard, as uid 10001 on
a read-only root filesystem, and a Service's DNS name resolves and answers from a pod
(CoreDNS + kube-proxy + the CNI bridge).

NetworkPolicies are not enforced on this node (the CNI bridge plugin has no policy
engine); nothing here relies on them.
"""

from __future__ import annotations

import json

import pytest

from tests.bed import Node
from tests.e2e.node.helpers import RESTRICTED, describe, restricted_namespace, run_pod, wait_for

# The first test of a session pays for starting the node (and building a stale image).
pytestmark = [pytest.mark.node, pytest.mark.timeout(1500)]


def test_the_image_runs_as_10001_read_only_and_kubetrade_help_works(node: Node) -> None:
    ns = restricted_namespace(node)
    image = node.images.project.name
    out = run_pod(node, ns, "help", image, ["kubetrade", "--help"])
    for sub in ("operator", "runner", "api", "validate", "preflight"):
        assert sub in out, out
    probe = (
        "import os, pathlib\n"
        "print(os.getuid(), os.getgid())\n"
        "try:\n    pathlib.Path('/opt/x').write_text('x')\nexcept OSError as e:\n"
        "    print('readonly', e.errno)\n"
    )
    out = run_pod(node, ns, "whoami", image, ["python", "-c", probe])
    assert out.split() == ["10001", "10001", "readonly", "30"], out  # 30: EROFS


def test_a_service_name_resolves_and_answers_from_a_pod(node: Node) -> None:
    ns = restricted_namespace(node)
    image = node.images.project.name
    server = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {
            "automountServiceAccountToken": False,
            "containers": [{
                "name": "web", "image": image, "imagePullPolicy": "Never",
                "command": ["python", "-m", "http.server", "8080", "--directory", "/opt"],
                "ports": [{"containerPort": 8080}], "securityContext": RESTRICTED,
                "readinessProbe": {"httpGet": {"path": "/", "port": 8080}, "periodSeconds": 1},
            }],
        },
    }  # fmt: skip
    service = {
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }  # fmt: skip
    node.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(server))
    node.kubectl("-n", ns, "apply", "-f", "-", input=json.dumps(service))
    wait_for(
        lambda: "True" in node.kubectl("-n", ns, "get", "pod", "web", "-o",
                                       "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                                       check=False).stdout,
        120, "the web pod Ready through its probe", lambda: describe(node, ns),
    )  # fmt: skip
    # kube-proxy programs the Service's rules a moment after the endpoint turns ready
    # (its sync is eventual, ~1 s here; CI once saw "connection refused" on the first
    # try), so the client retries for up to 30 s, as any client of a new Service must.
    client = (
        "import socket, time, urllib.error, urllib.request\n"
        f"print(socket.gethostbyname('web.{ns}.svc.cluster.local'))\n"
        "deadline = time.monotonic() + 30\n"
        "while True:\n"
        "    try:\n"
        "        print(urllib.request.urlopen('http://web/', timeout=10).status); break\n"
        "    except urllib.error.URLError:\n"
        "        if time.monotonic() > deadline: raise\n"
        "        time.sleep(0.5)\n"
    )
    out = run_pod(node, ns, "client", image, ["python", "-c", client])
    ip, status = out.split()
    cluster_ip = node.kubectl("-n", ns, "get", "svc", "web", "-o",
                              "jsonpath={.spec.clusterIP}").stdout  # fmt: skip
    assert ip == cluster_ip
    assert status == "200"
