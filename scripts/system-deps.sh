#!/usr/bin/env bash
# Installs the Debian packages the tests run for real: redis-server (state store),
# etcd-server (fallback etcd; the test bed builds its own newer one), chromium
# (dashboard browser test) and prometheus (for promtool, which checks alert rules).
# The test bed's real node (tests marked `node`, tests/bed/node.py): containerd + runc
# (the container runtime), containernetworking-plugins (bridge, host-local, loopback),
# iptables + conntrack (kube-proxy), buildah (builds the Dockerfile without a daemon
# or registry), mmdebstrap (Debian root filesystems for the base and Redis images) and
# gcc (the static pause binary).
# Idempotent and quiet: does nothing when every command is already present, so a
# warm `make test` spends no time here.
set -euo pipefail

# command -> Debian package
declare -A want=(
  [redis-server]=redis-server
  [etcd]=etcd-server
  [chromium]=chromium
  [promtool]=prometheus
  [containerd]=containerd
  [runc]=runc
  [/usr/lib/cni/bridge]=containernetworking-plugins
  [iptables]=iptables
  [conntrack]=conntrack
  [buildah]=buildah
  [mmdebstrap]=mmdebstrap
  [gcc]=gcc
)
# Versions the node was brought up with (Debian 12). When the mirror no longer has one
# (a point release replaced it), the current version is installed, with a warning.
declare -A pin=(
  [containerd]=1.6.20~ds1-1+deb12u3
  [runc]=1.1.5+ds1-1+deb12u1
  [containernetworking-plugins]=1.1.1+ds1-3+b5
  [iptables]=1.8.9-2
  [conntrack]=1:1.4.7-1+b2
  [buildah]=1.28.2+ds1-3+deb12u1+b3
  [mmdebstrap]=1.3.5-7
)

missing=()
for cmd in "${!want[@]}"; do
  if [[ $cmd == /* ]]; then [ -e "$cmd" ] && continue; else command -v "$cmd" >/dev/null 2>&1 && continue; fi
  missing+=("${want[$cmd]}")
done
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
    echo "system-deps: missing ${missing[*]} and not root; install them with apt-get" >&2
    exit 1
  fi
else
  SUDO=()
fi

echo "system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# Output goes to a log that is shown only when apt-get fails.
"${SUDO[@]}" apt-get update -qq >"$log" 2>&1 || { cat "$log" >&2; exit 1; }
# --no-install-recommends keeps prometheus from pulling node-exporter & co.;
# the packages' own services are not needed (the tests start their own servers).
pinned=()
for pkg in "${missing[@]}"; do pinned+=("$pkg${pin[$pkg]:+=${pin[$pkg]}}"); done
if ! "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${pinned[@]}" >"$log" 2>&1; then
  echo "system-deps: pinned versions not installable, installing current ones:" >&2
  grep -E '^E:' "$log" >&2 || true
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
    || { cat "$log" >&2; exit 1; }
fi
# Debian starts the packaged daemons on install; stop them so they do not hold
# the default ports or CPU. Best effort: there is no init system in some sandboxes.
for svc in redis-server etcd prometheus containerd; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
