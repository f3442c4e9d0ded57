#!/usr/bin/env bash
# Installs the Debian packages the tests run for real: redis-server (state store),
# etcd-server (fallback etcd; the test bed builds its own newer one), chromium
# (dashboard browser test) and prometheus (for promtool, which checks alert rules).
# Idempotent and quiet: does nothing when every command is already present, so a
# warm `make test` spends no time here.
set -euo pipefail

# command -> Debian package
declare -A want=(
  [redis-server]=redis-server
  [etcd]=etcd-server
  [chromium]=chromium
  [promtool]=prometheus
)

missing=()
for cmd in "${!want[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${want[$cmd]}")
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
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1 \
  || { cat "$log" >&2; exit 1; }
# Debian starts the packaged daemons on install; stop them so they do not hold
# the default ports or CPU. Best effort: there is no init system in some sandboxes.
for svc in redis-server etcd prometheus; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet "$svc" 2>/dev/null; then
    "${SUDO[@]}" systemctl disable --now "$svc" >/dev/null 2>&1 || true
  fi
done
