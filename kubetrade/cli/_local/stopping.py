"""Clean stops of ``kubetrade local``: SIGINT/SIGTERM end trading at once, the process
exits within :data:`STOP_BOUND_S`.

The stop, in order:

1. The signal sets one :class:`StopRequest`. Every runner's market data is a
   :class:`GatedMarket`, which yields no candle after it: no new decision, so no new
   order, from that instant on. A candle already being processed finishes (its order is
   persisted, sent and resolved as usual).
2. The API server is told to exit (its own graceful shutdown is bounded); a stop before
   the server runs cancels the start-up instead.
3. :func:`stop_tasks`: the runners get :data:`RUNNER_GRACE_S` to end by themselves
   (their candle loop has ended), then are cancelled, again every
   :data:`CANCEL_RETRY_S`: Python 3.11's ``asyncio.wait_for`` (inside redis-py) can
   swallow a cancel, and one swallowed cancel must not keep a runner alive.
4. Whatever still runs after that is named in the log, and the process ends anyway
   (:func:`exit_now`) rather than wait on it forever.

State stays consistent on every path: orders are persisted before they are sent and
looked up at the next start, exactly as after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from typing import Any

import uvicorn

from kubetrade.cli._local.embedded_redis import STOP_TIMEOUT_S as REDIS_STOP_TIMEOUT_S
from kubetrade.domain.emergency import REDIS_WAIT_S
from kubetrade.domain.models import Candle
from kubetrade.logs import get_logger
from kubetrade.runner.market import MarketSource

log = get_logger("kubetrade.local")

#: Seconds the runners get to end by themselves after the stop (their in-flight candle).
RUNNER_GRACE_S = 3.0
#: Seconds of repeated cancels after the grace, before a runner is given up on.
RUNNER_CANCEL_S = 5.0
#: Seconds between cancels of a task that has not ended (a swallowed cancel).
CANCEL_RETRY_S = 0.25
#: Seconds uvicorn gives open WebSockets and slow requests at a stop.
GRACEFUL_SHUTDOWN_S = 3
#: Seconds tasks left at the very end (none expected) get before the process exits.
LEFTOVER_S = 2.0
#: The bound from a stop signal to the end of the process, in seconds: the API's
#: graceful shutdown, then the runners' grace and cancels, the embedded Redis' own stop
#: (it writes its file), the kill switch's last write of a kept halt, leftovers, plus
#: margin for closing clients on a loaded machine.
STOP_BOUND_S = (
    GRACEFUL_SHUTDOWN_S + RUNNER_GRACE_S + RUNNER_CANCEL_S + REDIS_STOP_TIMEOUT_S
    + REDIS_WAIT_S + LEFTOVER_S + 3.0
)

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopRequest:
    """The one stop of the process, asked for by a signal or by an error.

    ``event`` is set at once (runners' market data closes on it); then the API server
    (``server``, once it exists) is told to exit, or, before it exists, the start-up
    (``main``) is cancelled. A second SIGINT makes uvicorn skip its graceful wait.
    """

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.server: uvicorn.Server | None = None
        self.main: asyncio.Task[Any] | None = asyncio.current_task()
        self.cleaning_up = False
        self._signals = 0

    @property
    def requested(self) -> bool:
        return self.event.is_set()

    def request(self, reason: str) -> None:
        """Stop everything (idempotent); logged once, with ``reason``."""
        if not self.event.is_set():
            self.event.set()
            log.warning("local.stopping", reason=reason,
                        note="runners take no new candle; in-flight work finishes or is "
                        f"cancelled; the process ends within {STOP_BOUND_S:.0f} s")
        if self.server is not None:
            self.server.should_exit = True
        elif self.main is not None and not self.cleaning_up:
            self.main.cancel()

    def checkpoint(self) -> None:
        """Raise CancelledError when the stop was requested: the cancel of the start-up
        may have been swallowed (``asyncio.wait_for`` inside redis-py, Python 3.11)."""
        if self.event.is_set():
            raise asyncio.CancelledError("stop requested during start-up")

    def attach(self, server: uvicorn.Server) -> None:
        """From now on the stop goes through ``server``'s exit (at once if asked before)."""
        self.server = server
        if self.event.is_set():
            server.should_exit = True

    def on_signal(self, sig: signal.Signals) -> None:
        self._signals += 1
        if self._signals > 1 and self.server is not None:
            self.server.force_exit = True  # asked twice: no graceful wait
        self.request(f"signal {sig.name}")

    @contextlib.contextmanager
    def handling_signals(self) -> Iterator[None]:
        """SIGINT/SIGTERM request the stop while the block runs (the event loop's own
        handlers: a signal never interrupts code between two statements). After it, for
        the rest of the process' end, another one ends the process at once with
        :attr:`exit_code` (set it before leaving the block): Python's own handlers would
        make a repeated Ctrl-C a traceback and a repeated SIGTERM a death by signal."""
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self.on_signal, sig)
        try:
            yield
        finally:
            for sig in SIGNALS:
                loop.remove_signal_handler(sig)
                signal.signal(sig, self._after_the_stop)

    #: The process' exit status once the stop is done (0 clean, 1 failed).
    exit_code = 1

    def _after_the_stop(self, signum: int, frame: object) -> None:
        exit_now(self.exit_code)


class StoppableServer(uvicorn.Server):
    """uvicorn's server without its own signal handling: :class:`StopRequest` has the
    signals for the whole life of the process (start-up included) and sets
    ``should_exit``; a stop that ended in an orderly shutdown is exit status 0."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class GatedMarket:
    """A runner's market data that ends when the stop is requested: the candle loop
    gets no candle after the stop, even one that arrives at the same moment.

    When it ends at the stop it logs ``local.gate_closed`` with ``strategy`` (``name``)
    and ``last_candles`` ({symbol: open time ms} of the last candle it handed over, the
    newest any order of this run can be for).
    """

    def __init__(self, inner: MarketSource, stop: asyncio.Event, name: str = "") -> None:
        self.inner = inner
        self.stop = stop
        self.kind = inner.kind
        self.name = name
        self.handed: dict[str, int] = {}

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    async def candles(self, cursor: Mapping[str, int]) -> AsyncIterator[tuple[str, Candle]]:
        source = aiter(self.inner.candles(cursor))
        stopped = asyncio.ensure_future(self.stop.wait())
        try:
            while not self.stop.is_set():
                step = asyncio.ensure_future(anext(source))
                await asyncio.wait({step, stopped}, return_when=asyncio.FIRST_COMPLETED)
                if not step.done():
                    step.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await step
                    return
                if self.stop.is_set():
                    return
                try:
                    item = step.result()
                except StopAsyncIteration:
                    return
                self.handed[item[0]] = item[1].ts_ms
                yield item
        finally:
            stopped.cancel()
            if self.stop.is_set():
                log.info("local.gate_closed", strategy=self.name, last_candles=self.handed)
            with contextlib.suppress(Exception):
                await source.aclose()  # type: ignore[attr-defined]


async def stop_tasks(
    tasks: Sequence[asyncio.Task[Any]], *, grace_s: float, cancel_s: float
) -> list[str]:
    """Wait up to ``grace_s`` seconds for ``tasks`` to end, then cancel them, again
    every :data:`CANCEL_RETRY_S`, for up to ``cancel_s`` seconds. Returns the names of
    the tasks still running then (none unless one ignores cancels)."""
    pending = {t for t in tasks if not t.done()}
    if pending and grace_s > 0:
        _, pending = await asyncio.wait(pending, timeout=grace_s)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cancel_s
    while pending:
        left = deadline - loop.time()
        if left <= 0:
            break
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(CANCEL_RETRY_S, left))
    return sorted(t.get_name() for t in pending)


async def end_leftovers(timeout_s: float = LEFTOVER_S) -> list[str]:
    """Cancel every other task of the loop (none expected) and wait ``timeout_s``;
    the names of those still running."""
    current = asyncio.current_task()
    others = [t for t in asyncio.all_tasks() if t is not current]
    return await stop_tasks(others, grace_s=0, cancel_s=timeout_s)


def exit_now(code: int) -> None:
    """End the process at once with ``code``: a task that ignores cancels would make
    ``asyncio.run`` wait on it forever. Output is flushed; state is in Redis."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)
