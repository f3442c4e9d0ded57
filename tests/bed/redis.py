"""A throwaway Debian `redis-server` on a free loopback port."""

from __future__ import annotations

import functools
import shutil
import socket
from dataclasses import dataclass

from tests.bed.procs import BedError, Managed, free_port, new_workdir


def _pong(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")


@dataclass
class RedisServer:
    """A running redis-server; `url` is what REDIS_URL would be."""

    port: int
    process: Managed

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        self.process.stop()


def start_redis(timeout: float = 20.0) -> RedisServer:
    """Start redis without persistence (tests want a clean, fast store)."""
    exe = shutil.which("redis-server")
    if exe is None:
        raise BedError("redis-server not found: run scripts/system-deps.sh (or `make test`)")
    last: BedError | None = None
    for _ in range(3):  # another process may grab the port between pick and bind
        port = free_port()
        workdir = new_workdir("redis")
        argv = [
            exe,
            "--port", str(port),
            "--bind", "127.0.0.1",
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--daemonize", "no",
            "--loglevel", "warning",
        ]  # fmt: skip
        proc = Managed("redis", argv, workdir)
        try:
            proc.wait_until(functools.partial(_pong, port), timeout, "answering PING")
        except BedError as err:
            proc.stop()
            last = err
            continue
        return RedisServer(port=port, process=proc)
    assert last is not None
    raise last
