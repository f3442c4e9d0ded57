"""Child processes that cannot outlive the run that started them.

Two defences against a crashed run leaving servers behind: every child asks the
kernel for SIGKILL when its parent dies (PR_SET_PDEATHSIG), and every child is
recorded in a pidfile under `.cache/run/` naming its owner. A new run reaps the
entries whose owner is gone. Entries of a live owner (another engineer's pytest in
the same checkout) are left alone, so concurrent runs do not kill each other.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from tests.bed.paths import RUN

_PR_SET_PDEATHSIG = 1


class BedError(RuntimeError):
    """A test-bed server failed to start; the message carries its log tail."""


def _die_with_parent() -> None:
    """Runs in the child between fork and exec (Linux only)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    """A loopback port free right now; callers retry if another process wins it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead for our purposes.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _terminate(pid: int, timeout: float = 5.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def reap_stale() -> list[str]:
    """Kill servers and remove dirs left by runs whose owner process has died."""
    reaped: list[str] = []
    if not RUN.is_dir():
        return reaped
    for pidfile in sorted(RUN.glob("*.json")):
        try:
            entry = json.loads(pidfile.read_text())
        except (OSError, ValueError):
            pidfile.unlink(missing_ok=True)
            continue
        if _alive(int(entry["owner"])):
            continue
        pid = int(entry["pid"])
        # Only kill the pid if it is still the program we started (pids get reused).
        if _alive(pid) and entry["exe"] in _cmdline(pid):
            _terminate(pid)
            reaped.append(f"{entry['name']} pid {pid}")
        if entry.get("dir"):
            shutil.rmtree(entry["dir"], ignore_errors=True)
        pidfile.unlink(missing_ok=True)
    # Work dirs are named "<owner pid>-..."; remove those of dead owners even when
    # the run died before it wrote a pidfile.
    for workdir in RUN.iterdir():
        owner = workdir.name.split("-", 1)[0]
        if workdir.is_dir() and owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(workdir, ignore_errors=True)
    return reaped


class Managed:
    """One server process with its own directory, log file and pidfile."""

    def __init__(self, name: str, argv: Sequence[str], workdir: Path) -> None:
        self.name = name
        self.argv = list(argv)
        self.workdir = workdir
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("ab")
        try:
            # PDEATHSIG fires when the forking *thread* exits: the bed starts its
            # servers from the thread that owns the session (pytest's main thread).
            self.proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                cwd=workdir,
                preexec_fn=_die_with_parent,
            )
        except OSError as err:
            self._log.close()
            shutil.rmtree(workdir, ignore_errors=True)
            raise BedError(f"cannot start {name} ({self.argv[0]}): {err}") from err
        self.pidfile = RUN / f"{os.getpid()}-{name}-{self.proc.pid}.json"
        self.pidfile.write_text(
            json.dumps(
                {
                    "name": name,
                    "pid": self.proc.pid,
                    "owner": os.getpid(),
                    "exe": self.argv[0],
                    "dir": str(workdir),
                }
            )
        )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll `ready` until true; fail fast with the log if the process exits."""
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise BedError(
                    f"{self.name} exited with code {self.proc.returncode} before {what}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                if ready():
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BedError(
                    f"{self.name} not {what} after {timeout:.0f}s; log {self.log_path}:\n"
                    f"{self.log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, remove_dir: bool = True) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        self.pidfile.unlink(missing_ok=True)
        if remove_dir:
            shutil.rmtree(self.workdir, ignore_errors=True)


def new_workdir(name: str) -> Path:
    """A fresh directory for one server, named so stale ones are recognisable."""
    RUN.mkdir(parents=True, exist_ok=True)
    path = RUN / f"{os.getpid()}-{name}-{time.monotonic_ns()}"
    path.mkdir()
    return path
