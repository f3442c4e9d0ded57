#!/usr/bin/env bash
# `make test`'s run of every test. The tests marked `node` (the bed's real kubelet and
# containerd node: one per machine) run in a pytest session of their own beside the
# others, which run on two pytest-xdist workers. xdist's `--dist loadgroup` cannot keep
# them on one worker under pytest 9.2 (it renames node ids through `_nodeid`, which pytest
# no longer reads), and most of their time is spent waiting on pods, not on the CPU.
set -u
BIN=${BIN:-.venv/bin}
mkdir -p .cache
log=.cache/test-node.log
"$BIN/pytest" tests -m node --durations=15 >"$log" 2>&1 &
node=$!
trap 'kill "$node" 2>/dev/null' INT TERM
"$BIN/pytest" tests -m "not node" -n 2 --durations=40
rest=$?
wait "$node"
nodes=$?
echo "== the tests marked node (their own session, run beside the above; log: $log)"
cat "$log"
echo "== exit: not node $rest, node $nodes"
exit $(( rest != 0 || nodes != 0 ))
