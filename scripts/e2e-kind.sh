#!/usr/bin/env bash
# `make e2e-kind`: the e2e suite against a kind cluster, for machines with Docker.
# Creates a cluster, loads the image, installs the chart, runs tests/e2e, deletes the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."

skip() { echo "e2e-kind: SKIPPED: $*"; exit 0; }
command -v docker >/dev/null || skip "docker is not installed"
docker info >/dev/null 2>&1 || skip "no Docker engine is running (docker info failed)"
command -v kind >/dev/null || skip "kind is not installed (go install sigs.k8s.io/kind@latest)"
HELM=${HELM:-$(command -v helm || echo .cache/bin/helm)}
KUBECTL=${KUBECTL:-$(command -v kubectl || echo .cache/bin/kubectl)}
[ -x "$HELM" ] || skip "helm not found (run make testbed to build it)"

CLUSTER=${KIND_CLUSTER:-kubetrade-e2e}
IMAGE=kubetrade:e2e
NS=kubetrade-e2e
cleanup() { kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; }
trap cleanup EXIT

docker build -t "$IMAGE" .
kind create cluster --name "$CLUSTER" --wait 120s
kind load docker-image "$IMAGE" --name "$CLUSTER"
export KUBECONFIG
KUBECONFIG=$(mktemp)
kind get kubeconfig --name "$CLUSTER" >"$KUBECONFIG"
"$KUBECTL" create namespace "$NS"
"$KUBECTL" label namespace "$NS" pod-security.kubernetes.io/enforce=restricted
"$HELM" install kubetrade charts/kubetrade -n "$NS" -f charts/kubetrade/values-dev.yaml \
  --set image.repository=kubetrade --set image.tag=e2e --wait --timeout 5m
KUBETRADE_E2E_KUBECONFIG="$KUBECONFIG" KUBETRADE_E2E_NAMESPACE="$NS" \
  .venv/bin/pytest tests/e2e -m kind -v
