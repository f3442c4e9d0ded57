"""One writer per candle series: the lease a recorder must hold to write a series, and
what a recorder knows of its own tenure.

``WriterLease`` is the shared part (who may write ``series`` now): ``FileLease`` here,
for processes sharing one data directory on one machine, and
``kubetrade.state.leases.RedisLease`` for runners in a cluster (marketdata does not import
state: the runner's assembly passes one in). ``Tenure`` is the local part, on the
recorder's clock: it takes or renews the lease and says whether writing is safe *now*.
A take or renewal sent at ``start`` makes writing safe until ``start + ttl - margin``:
the shared expiry counts from when the lease received the request, which is later than
``start``, so the local deadline passes first, and ``margin`` (a fifth of the TTL)
covers clocks running at slightly different rates. A holder that cannot renew (Redis
unreachable, process paused) stops writing at that deadline, before anyone else can
take the series.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kubetrade.domain.clock import Clock

log = logging.getLogger("kubetrade.marketdata.recording")


class WriterLease(Protocol):
    """A lease per series name, held by one token at a time until it expires."""

    async def acquire(self, series: str, token: str, ttl_ms: int, now_ms: int) -> bool:
        """Take ``series`` for ``token`` when nobody holds it (or the holder's lease
        expired), or renew it when ``token`` holds it, for ``ttl_ms`` from now; false
        when another token holds it. ``now_ms`` is the caller's clock: a lease that keeps
        its own expiry (FileLease) uses it, Redis counts on its own clock. Raises
        ConnectionError or OSError when the lease cannot be reached."""
        ...

    async def release(self, series: str, token: str, now_ms: int) -> None:
        """Give ``series`` up if ``token`` holds it; another token's lease is left alone.
        Raises as ``acquire``."""
        ...


class FileLease:
    """Leases as small JSON files ``{"owner": token, "expires_ms": epoch ms}`` under
    ``<datadir>/.leases``, read and written under flock: every process on one machine
    sharing the directory (``kubetrade local``, runners without REDIS_URL)."""

    def __init__(self, datadir: str | Path) -> None:
        self.dir = Path(datadir) / ".leases"

    async def acquire(self, series: str, token: str, ttl_ms: int, now_ms: int) -> bool:
        """See ``WriterLease.acquire`` (the file work runs in a thread)."""
        return await asyncio.to_thread(self._update, series, token, now_ms + ttl_ms, now_ms)

    async def release(self, series: str, token: str, now_ms: int) -> None:
        """See ``WriterLease.release``."""
        await asyncio.to_thread(self._update, series, token, None, now_ms)

    def _update(self, series: str, token: str, expires_ms: int | None, now_ms: int) -> bool:
        """Hold ``series`` for ``token`` until ``expires_ms`` (None: give it up) unless
        another token holds it unexpired; true when ``token`` holds it afterwards."""
        self.dir.mkdir(parents=True, exist_ok=True)
        path = self.dir / (series.replace("/", "-").replace(" ", "_") + ".json")
        with open(path, "a+") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                fh.seek(0)
                text = fh.read()
                held = json.loads(text) if text.strip() else {}
                if held.get("owner") not in (None, token) and held.get("expires_ms", 0) > now_ms:
                    return False
                fh.seek(0)
                fh.truncate()
                if expires_ms is not None:
                    fh.write(json.dumps({"owner": token, "expires_ms": expires_ms}))
                fh.flush()
                os.fsync(fh.fileno())
                return expires_ms is not None
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


@dataclass(eq=False)
class Tenure:
    """What one recorder (``token``) knows of its leases, on its ``clock``; see the
    module doc. ``ttl_ms``: the lease's length; renewals are due every third of it."""

    lease: WriterLease
    token: str
    clock: Clock
    ttl_ms: int
    margin_ms: int = field(init=False)
    errors: int = field(default=0, init=False)
    #: series -> writing is safe before this (clock ms)
    _until: dict[str, int] = field(default_factory=dict, init=False)
    _failing: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.ttl_ms < 1000:
            raise ValueError(f"lease TTL must be at least 1000 ms, got {self.ttl_ms}")
        self.margin_ms = self.ttl_ms // 5

    @property
    def renew_every_s(self) -> float:
        """Seconds between renewals (a third of the TTL: two may fail before expiry)."""
        return self.ttl_ms / 3000

    def holds(self, series: str) -> bool:
        """True while writing ``series`` is safe (taken or renewed less than
        ``ttl - margin`` ago on this clock)."""
        return self.clock.now_ms() < self._until.get(series, 0)

    def held(self) -> list[str]:
        """The series this token took and has not given up (expired ones included)."""
        return list(self._until)

    async def refresh(self, series: str) -> bool:
        """Take or renew ``series``; true when this token has just gained it (it did not
        hold it safely before: the series may have been written by another since).
        A lease that cannot be reached is logged once per outage and counted in
        ``errors``; the series is then held only until its current deadline."""
        start = self.clock.now_ms()
        held_before = start < self._until.get(series, 0)
        try:
            ok = await self.lease.acquire(series, self.token, self.ttl_ms, start)
        except (ConnectionError, OSError) as exc:
            self.errors += 1
            if not self._failing:
                log.warning("writer lease of %s unreachable (%s); writing stops when the "
                            "current lease runs out", series, exc)
            self._failing = True
            return False
        if self._failing:
            log.info("writer lease reachable again")
            self._failing = False
        if not ok:
            self._until.pop(series, None)
            return False
        self._until[series] = start + self.ttl_ms - self.margin_ms
        return not held_before

    async def release(self, series: str) -> None:
        """Give ``series`` up (another recorder may take it at once); never raises."""
        self._until.pop(series, None)
        try:
            await self.lease.release(series, self.token, self.clock.now_ms())
        except (ConnectionError, OSError) as exc:
            log.warning("could not give up the writer lease of %s (%s); it expires on its "
                        "own", series, exc)


__all__ = ["FileLease", "Tenure", "WriterLease"]
