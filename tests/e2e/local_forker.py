"""A fork server for many short `kubetrade local` processes (the stop tests).

Starting a Python interpreter and importing kubetrade's dependencies costs seconds on a
loaded machine; 50 stops at random moments would spend most of their time there. This
helper imports everything once (no thread, no event loop started), then forks one child
per request: the child is a fresh `kubetrade local` from ``kubetrade.cli.main`` on, its
output to a log file, its own environment, its own process (the test signals its pid).

Protocol, one JSON object per line on stdin / stdout:

- ``{"op": "spawn", "argv": [...], "env": {...}, "log": path}`` -> ``{"pid": n}``
- ``{"op": "wait", "pid": n, "timeout": s}`` -> ``{"code": exit code or null}`` (null:
  still running after ``timeout`` s; a signal's death is minus its number)
- ``{"op": "kill", "pid": n}`` -> ``{"code": ...}`` (SIGKILL, then reaped)

Started as ``python -m tests.e2e.local_forker``; the first line out is ``{"ready": n}``
(n = live threads after the imports, 1 when a fork is safe).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import threading
import time
import traceback
from typing import Any

#: Imported before any fork, so each child starts at kubetrade's own code.
PRELOAD = (
    "kubetrade.cli",
    "kubetrade.cli.local",
    "kubetrade.cli._local.system",
    "kubetrade.api.app",
    "kubetrade.runner.assembly",
    "kubetrade.marketdata",
    "pyarrow.compute",
    "pandas",  # pyarrow.compute imports it on first use (the replay's checks): ~2 s
    "uvicorn",
    "uvloop",
    "httptools",
)


def _preload() -> None:
    import importlib

    for name in PRELOAD:
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _child(argv: list[str], env: dict[str, str], fd: int) -> None:  # pragma: no cover
    """In the forked child: run ``kubetrade <argv>`` with its output to ``fd`` and end
    the process with its code."""
    code = 1
    try:
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["kubetrade", *argv]
        from kubetrade.cli import main

        code = main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


def _wait(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def _handle(request: dict[str, Any]) -> dict[str, Any]:
    op = request["op"]
    if op == "spawn":
        sys.stdout.flush()
        # the log exists when the pid is answered (the caller reads it at once)
        fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        pid = os.fork()
        if pid == 0:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            _child(request["argv"], request["env"], fd)
        os.close(fd)
        return {"pid": pid}
    if op == "wait":
        return {"code": _wait(int(request["pid"]), float(request["timeout"]))}
    if op == "kill":
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(request["pid"]), signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            return {"code": _wait(int(request["pid"]), 30.0)}
        return {"code": None}
    raise ValueError(f"unknown op {op!r}")


def serve() -> None:
    """Answer requests on stdin until it closes; children left then are killed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a test's Ctrl-C is for the test
    _preload()
    print(json.dumps({"ready": threading.active_count()}), flush=True)
    children: set[int] = set()
    for line in sys.stdin:
        request = json.loads(line)
        try:
            answer = _handle(request)
        except Exception as exc:
            answer = {"error": f"{type(exc).__name__}: {exc}"}
        if request["op"] == "spawn":
            children.add(int(answer["pid"]))
        elif answer.get("code") is not None:
            children.discard(int(request["pid"]))
        print(json.dumps(answer), flush=True)
    for pid in children:
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


if __name__ == "__main__":
    serve()
