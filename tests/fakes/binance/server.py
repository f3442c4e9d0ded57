"""A local Binance-spot-compatible HTTP server for tests.

The real ccxt async Binance client talks to it (its ``urls['api']`` entries pointed at
``FakeBinance.url``), so request signing, response parsing and ccxt's error mapping
all run for real. Answers, error codes and headers follow Binance's spot API docs
(rest-api.md / errors.md in binance/binance-spot-api-docs) and ccxt's static fixtures.

The server runs on its own event loop in a daemon thread, so sync and async tests (and
other processes, via ``python -m tests.fakes.binance``) can use it alike. Faults are
injected by the test (methods here, or POST /_fake/control from another process).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import threading
import time
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from .data import INTERVAL_MS
from .limits import AccountLimits, Refusal
from .state import ApiError, ExchangeState, FakeOrder, fmt

# Binance request weights (rest-api.md); (weight with symbol, weight without symbol)
WEIGHTS: dict[tuple[str, str], tuple[int, int]] = {
    ("GET", "/api/v3/ping"): (1, 1),
    ("GET", "/api/v3/time"): (1, 1),
    ("GET", "/api/v3/exchangeInfo"): (20, 20),
    ("GET", "/api/v3/klines"): (2, 2),
    ("GET", "/api/v3/ticker/price"): (2, 4),
    ("GET", "/api/v3/ticker/24hr"): (2, 80),
    ("GET", "/api/v3/ticker/bookTicker"): (2, 4),
    ("GET", "/api/v3/account"): (20, 20),
    ("POST", "/api/v3/order"): (1, 1),
    ("POST", "/api/v3/order/test"): (1, 1),
    ("GET", "/api/v3/order"): (4, 4),
    ("DELETE", "/api/v3/order"): (1, 1),
    ("GET", "/api/v3/openOrders"): (6, 80),
    ("DELETE", "/api/v3/openOrders"): (1, 1),
    ("GET", "/api/v3/allOrders"): (20, 20),
    ("GET", "/api/v3/myTrades"): (20, 20),
}
SAPI_WEIGHTS: dict[tuple[str, str], int] = {
    ("GET", "/sapi/v1/account/apiRestrictions"): 1,
    ("GET", "/sapi/v1/capital/config/getall"): 10,
}

BAD_KEY = (-2015, "Invalid API-key, IP, or permissions for action.", 401)
DEFAULT_API_KEY = "fake-binance-api-key-0123456789abcdef"
DEFAULT_SECRET = "fake-binance-secret-fedcba9876543210"


@dataclass
class Fault:
    """One injected fault: applies to requests matching method/path, ``remaining`` times
    (None = until cleared)."""

    kind: str  # error | rate_limit | timestamp | hang | after_accept
    method: str | None = None
    path: str | None = None
    remaining: int | None = 1
    status: int = 500
    retry_after: int = 1
    mode: str = "timeout"  # after_accept: timeout | disconnect | 5xx
    hang_seconds: float = 30.0

    def matches(self, method: str, path: str) -> bool:
        return (self.method is None or self.method == method) and (
            self.path is None or self.path == path
        )


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status)


def _refused(r: Refusal) -> web.Response:
    return web.json_response(r.body, status=r.status, headers=r.headers)


def _error(err: ApiError) -> web.Response:
    return web.json_response({"code": err.code, "msg": err.msg}, status=err.status)


def _int(p: dict[str, str], name: str) -> int | None:
    v = p.get(name)
    if v is None or v == "":
        return None
    try:
        return int(v)
    except ValueError:
        raise ApiError(-1100, f"Illegal characters found in parameter '{name}'.") from None


class FakeBinance:
    """The server plus its state and fault switches. ``start()``/``stop()`` it, or use the
    ``fake_binance`` fixture (tests/fixtures/fake_binance.py)."""

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        secret: str = DEFAULT_SECRET,
        balances: dict[str, Decimal] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        client_id_reuse: str = "never",
        weight_limit: int = 6000,
        fee_asset: str | None = None,
        enforce_limits: bool = False,
    ) -> None:
        self.api_key = api_key
        self.secret = secret
        self.host = host
        self.port = port
        self.state = ExchangeState(balances=balances, client_id_reuse=client_id_reuse,
                                   fee_asset=fee_asset)
        self.weight_limit = weight_limit
        #: Binance's order-count limits and 418 bans (limits.py); off: only weight 429s.
        self.limits = AccountLimits() if enforce_limits else None
        self.clock_skew_ms = 0
        self._lock = threading.RLock()
        self.requests: Counter[str] = Counter()  # "METHOD /path" -> count
        self.weight_total = 0
        self._weight_minute = -1
        self._weight_used = 0
        self.faults: list[Fault] = []
        self.faults_fired: Counter[str] = Counter()
        # klines answers to corrupt: [remaining pages, row index, replacement OHLCV strings]
        self.kline_corruptions: list[tuple[int, int, tuple[str, ...]]] = []
        self._outage: str | None = None
        self._outage_gen = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._shutdown: asyncio.Event | None = None

    # ---- lifecycle ----------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> FakeBinance:
        ready = threading.Event()
        errors: list[BaseException] = []
        self._loop = asyncio.new_event_loop()

        def run() -> None:
            assert self._loop is not None
            asyncio.set_event_loop(self._loop)
            try:
                self._loop.run_until_complete(self._startup())
            except BaseException as e:  # surfaced to start()
                errors.append(e)
                ready.set()
                return
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="fake-binance", daemon=True)
        self._thread.start()
        if not ready.wait(15):
            raise RuntimeError("fake Binance did not start within 15 s")
        if errors:
            raise errors[0]
        return self

    def stop(self) -> None:
        if self._loop is None or self._thread is None:
            return
        fut = asyncio.run_coroutine_threadsafe(self._cleanup(), self._loop)
        try:
            fut.result(15)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(15)
            self._loop.close()
            self._loop = None
            self._thread = None

    def __enter__(self) -> FakeBinance:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def _startup(self) -> None:
        self._shutdown = asyncio.Event()
        app = web.Application(middlewares=[self._middleware])
        r = app.router
        r.add_get("/api/v3/ping", self._ping)
        r.add_get("/api/v3/time", self._time)
        r.add_get("/api/v3/exchangeInfo", self._exchange_info)
        r.add_get("/api/v3/klines", self._klines)
        r.add_get("/api/v3/ticker/price", self._ticker_price)
        r.add_get("/api/v3/ticker/24hr", self._ticker_24hr)
        r.add_get("/api/v3/ticker/bookTicker", self._book_ticker)
        r.add_get("/api/v3/account", self._account)
        r.add_post("/api/v3/order", self._new_order)
        r.add_post("/api/v3/order/test", self._test_order)
        r.add_get("/api/v3/order", self._get_order)
        r.add_delete("/api/v3/order", self._cancel_order)
        r.add_get("/api/v3/openOrders", self._open_orders)
        r.add_delete("/api/v3/openOrders", self._cancel_all)
        r.add_get("/api/v3/allOrders", self._all_orders)
        r.add_get("/api/v3/myTrades", self._my_trades)
        r.add_get("/sapi/v1/account/apiRestrictions", self._api_restrictions)
        r.add_get("/sapi/v1/capital/config/getall", self._capital_config)
        r.add_get("/_fake/state", self._ctl_state)
        r.add_post("/_fake/control", self._ctl_control)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await self._open_site()

    async def _open_site(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, self.host, self.port, reuse_address=True)
        await self._site.start()
        server = self._site._server
        if server is not None and self.port == 0:
            socks = getattr(server, "sockets", None) or []
            self.port = socks[0].getsockname()[1]

    async def _close_site(self) -> None:
        if self._site is not None:
            await self._site.stop()
            self._site = None

    async def _cleanup(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._shutdown is not None:
            self._shutdown.set()
        if self._runner is not None:
            await self._runner.cleanup()

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(15)

    # ---- test controls --------------------------------------------------------------
    def set_market_time(self, ts_ms: int | None) -> None:
        """Pin the market clock (klines visible, current price) and fill limit orders
        the new price has crossed."""
        self.state.market_clock.pin(ts_ms)
        self.state.match(self.event_time_ms())

    def run_market_from(self, start_ms: int, speed: float = 1.0) -> None:
        self.state.market_clock.run_from(start_ms, speed)

    def run_market_live(self, data_start_ms: int | None = None, warmup_minutes: int = 120) -> None:
        """Serve the recorded candles as if they were happening now (for a runner on the
        system clock): bar times shifted by whole hours, ``warmup_minutes`` of history
        before "now". Default start: the first bar of the 1m BTCUSDT recording."""
        if data_start_ms is None:
            base = self.state.series["BTCUSDT"].base
            if not base:
                raise RuntimeError("no BTCUSDT recording to replay")
            finest = min(base, key=lambda name: INTERVAL_MS[name])
            data_start_ms = base[finest][0].open_ms
        self.state.market_clock.run_live(data_start_ms, warmup_minutes * 60_000,
                                         self.server_time_ms())

    def set_price(self, symbol: str, price: Decimal | str | None) -> None:
        with self.state.lock:
            if price is None:
                self.state.prices.pop(symbol, None)
            else:
                self.state.prices[symbol] = Decimal(str(price))
        self.state.match(self.event_time_ms())

    def set_liquidity(self, symbol: str, qty_per_match: Decimal | str | None) -> None:
        """Resting limit orders of ``symbol`` fill at most this much per price update
        (partial fills); None restores full fills."""
        with self.state.lock:
            if qty_per_match is None:
                self.state.liquidity.pop(symbol, None)
            else:
                self.state.liquidity[symbol] = Decimal(str(qty_per_match))

    def set_balance(self, asset: str, free: Decimal | str) -> None:
        with self.state.lock:
            self.state.balances[asset] = Decimal(str(free))

    def add_fault(self, fault: Fault) -> Fault:
        with self._lock:
            self.faults.append(fault)
        return fault

    def fail_orders_after_accept(
        self, count: int | None = 1, mode: str = "timeout", hang_seconds: float = 30.0
    ) -> Fault:
        """The next ``count`` POST /api/v3/order requests ARE executed, but the answer is
        lost: ``timeout`` holds it back ``hang_seconds``, ``disconnect`` drops the
        connection, ``5xx`` answers 503 (Binance: "execution status unknown")."""
        return self.add_fault(
            Fault("after_accept", "POST", "/api/v3/order", count, mode=mode,
                  hang_seconds=hang_seconds)
        )

    def fail_requests(
        self, status: int = 500, count: int | None = 1, method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """Answer matching requests with a 5xx (or any) status without executing them."""
        return self.add_fault(Fault("error", method, path, count, status=status))

    def rate_limit(
        self, count: int | None = 1, retry_after: int = 1, status: int = 429,
        method: str | None = None, path: str | None = None,
    ) -> Fault:
        """429 (or 418 IP ban) with ``Retry-After`` seconds, as Binance does."""
        return self.add_fault(
            Fault("rate_limit", method, path, count, status=status, retry_after=retry_after)
        )

    def timestamp_errors(self, count: int | None = 1, path: str | None = None) -> Fault:
        """-1021 "Timestamp for this request is outside of the recvWindow." on signed calls."""
        return self.add_fault(Fault("timestamp", None, path, count))

    def hang_requests(
        self, count: int | None = 1, hang_seconds: float = 30.0, method: str | None = None,
        path: str | None = None,
    ) -> Fault:
        """Hold matching requests until the client times out; they are never executed
        (the request was lost before reaching the matching engine)."""
        return self.add_fault(Fault("hang", method, path, count, hang_seconds=hang_seconds))

    def corrupt_klines(self, count: int = 1, row: int = 0,
                       values: tuple[str, ...] = ("NaN", "NaN", "NaN", "NaN", "0")) -> None:
        """The next ``count`` klines answers carry ``values`` as open, high, low, close,
        volume of row ``row``: a page with a candle no exchange would send."""
        with self._lock:
            self.kline_corruptions.append((count, row, values))

    def clear_faults(self) -> None:
        with self._lock:
            self.faults.clear()

    def start_outage(self, mode: str = "refuse", duration_s: float | None = None) -> None:
        """Full outage: ``refuse`` closes the listener (connection refused) and drops
        kept-alive connections; ``503`` answers every API request with 503. With
        ``duration_s`` it ends by itself after that many wall seconds (for tests that
        drive a runner process in real time)."""
        if mode not in ("refuse", "503"):
            raise ValueError(f"outage mode must be 'refuse' or '503', not {mode!r}")
        self._call(self._start_outage(mode, duration_s))

    async def _start_outage(self, mode: str, duration_s: float | None) -> None:
        with self._lock:
            self._outage = mode
            self._outage_gen += 1
            gen = self._outage_gen
        if mode == "refuse":
            await self._close_site()
        if duration_s is not None:
            async def end_later() -> None:
                await asyncio.sleep(duration_s)
                if self._outage_gen == gen:
                    await self._end_outage()

            task = asyncio.get_running_loop().create_task(end_later())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def end_outage(self) -> None:
        self._call(self._end_outage())

    async def _end_outage(self) -> None:
        with self._lock:
            self._outage = None
            self._outage_gen += 1
        if self._site is None and self._runner is not None:
            await self._open_site()

    @property
    def in_outage(self) -> bool:
        return self._outage is not None

    def set_clock_skew(self, ms: int) -> None:
        """Move the server's clock relative to wall time (a client that does not sync
        its time then gets -1021)."""
        self.clock_skew_ms = ms

    def server_time_ms(self) -> int:
        return time.time_ns() // 1_000_000 + self.clock_skew_ms

    def event_time_ms(self) -> int:
        """Timestamp of orders and trades: the market clock when the test drives one
        (so fills line up with the candles they traded on), else the server clock."""
        market = self.state.market_now()
        if market is None or self.state.market_clock.shift_ms:
            return self.server_time_ms()
        return market

    def count(self, method: str, path: str) -> int:
        with self._lock:
            return self.requests[f"{method} {path}"]

    @property
    def used_weight_1m(self) -> int:
        with self._lock:
            return self._weight_used if self._weight_minute == self._minute() else 0

    def _minute(self) -> int:
        return self.server_time_ms() // 60_000

    def reset_counters(self) -> None:
        with self._lock:
            self.requests.clear()
            self.faults_fired.clear()
            self.weight_total = 0

    # ---- middleware: counting, weights, outage, faults --------------------------------
    def _ban_check(self) -> Refusal | None:
        """418 while banned (``enforce_limits``)."""
        if self.limits is None:
            return None
        with self._lock:
            return self.limits.before(self.server_time_ms())

    def _take_fault(self, method: str, path: str, signed: bool) -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.remaining is not None and f.remaining <= 0:
                    continue
                if not f.matches(method, path):
                    continue
                if f.kind == "timestamp" and not signed:
                    continue
                if f.remaining is not None:
                    f.remaining -= 1
                self.faults_fired[f.kind] += 1
                return f
        return None

    def _weigh(self, method: str, path: str, query: Any) -> int:
        w_sym, w_all = WEIGHTS.get((method, path), (0, 0))
        w = w_sym if "symbol" in query else w_all
        with self._lock:
            minute = self._minute()
            if minute != self._weight_minute:
                self._weight_minute = minute
                self._weight_used = 0
            self._weight_used += w
            self.weight_total += w
            return self._weight_used

    async def _hang(self, seconds: float) -> None:
        assert self._shutdown is not None
        try:
            await asyncio.wait_for(self._shutdown.wait(), timeout=seconds)
        except TimeoutError:
            pass

    @staticmethod
    def _drop(request: web.Request) -> web.Response:
        """Close the connection without an answer (the client sees a reset)."""
        if request.transport is not None:
            request.transport.close()
        return web.Response(status=599)  # never reaches the client

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        method, path = request.method, request.path
        if path.startswith("/_fake/"):
            return await handler(request)  # type: ignore[no-any-return]
        with self._lock:
            self.requests[f"{method} {path}"] += 1
            outage = self._outage
        if outage == "refuse":
            return self._drop(request)
        if outage == "503":
            return web.Response(status=503, text="Service Unavailable")
        is_sapi = path.startswith("/sapi/")
        refusal = self._ban_check()
        if refusal is not None:
            return _refused(refusal)
        used = self._weigh(method, path, request.query)
        headers = {"X-MBX-USED-WEIGHT-1M": str(used)}
        if is_sapi:
            headers = {"X-SAPI-USED-IP-WEIGHT-1M": str(SAPI_WEIGHTS.get((method, path), 1))}
        if not is_sapi and used > self.weight_limit:
            retry = 60 - (self.server_time_ms() // 1000) % 60
            if self.limits is not None:
                with self._lock:
                    self.limits.limited(self.server_time_ms(), retry)
            return web.json_response(
                {"code": -1003, "msg": f"Too much request weight used; current limit is "
                 f"{self.weight_limit} request weight per 1 MINUTE. Please use WebSocket "
                 "Streams for live updates to avoid polling the API."},
                status=429, headers=headers | {"Retry-After": str(retry)},
            )
        signed = "signature" in request.query or method in ("POST", "DELETE") or path in (
            "/api/v3/account", "/api/v3/myTrades", "/api/v3/openOrders", "/api/v3/order",
            "/api/v3/allOrders") or is_sapi
        fault = self._take_fault(method, path, signed)
        if fault is not None and fault.kind != "after_accept":
            if fault.kind == "error":
                if fault.status == 500:
                    body = '{"code":-1001,"msg":"Internal error; unable to process your request. Please try again."}'  # noqa: E501
                    return web.Response(status=500, text=body, content_type="application/json",
                                        headers=headers)
                return web.Response(status=fault.status, text="Service Unavailable" if
                                    fault.status == 503 else "Bad Gateway", headers=headers)
            if fault.kind == "rate_limit":
                msg = (
                    "Way too much request weight used; IP banned until "
                    f"{self.server_time_ms() + fault.retry_after * 1000}. Please use WebSocket "
                    "Streams for live updates to avoid bans."
                    if fault.status == 418
                    else f"Too much request weight used; current limit is {self.weight_limit} "
                    "request weight per 1 MINUTE. Please use WebSocket Streams for live "
                    "updates to avoid polling the API."
                )
                return web.json_response(
                    {"code": -1003, "msg": msg}, status=fault.status,
                    headers=headers | {"Retry-After": str(fault.retry_after)},
                )
            if fault.kind == "timestamp":
                return web.json_response(
                    {"code": -1021,
                     "msg": "Timestamp for this request is outside of the recvWindow."},
                    status=400, headers=headers,
                )
            if fault.kind == "hang":
                # lost on the way in: never executed, the client only sees silence
                await self._hang(fault.hang_seconds)
                return web.Response(status=504, text="Gateway Timeout", headers=headers)
        if self.limits is not None and method == "POST" and path == "/api/v3/order":
            with self._lock:
                refusal, counts = self.limits.new_order(self.server_time_ms())
            if refusal is not None:
                return _refused(refusal)
            headers |= counts
        if self.state.market_clock.running:  # the market moved on: cross resting orders
            self.state.match(self.event_time_ms())
        try:
            resp: web.StreamResponse = await handler(request)
        except ApiError as e:
            resp = _error(e)
        if fault is not None and fault.kind == "after_accept":
            if fault.mode == "timeout":
                await self._hang(fault.hang_seconds)
            elif fault.mode == "disconnect":
                return self._drop(request)
            else:
                return web.Response(status=503, text="Service Unavailable", headers=headers)
        for k, v in headers.items():
            resp.headers[k] = v
        return resp

    # ---- auth ----------------------------------------------------------------------
    async def _signed(self, request: web.Request) -> dict[str, str]:
        """Verify X-MBX-APIKEY, the HMAC-SHA256 signature over query string + body, and
        timestamp/recvWindow, as Binance does; return all parameters."""
        if request.headers.get("X-MBX-APIKEY") != self.api_key:
            raise ApiError(*BAD_KEY)
        body = await request.text() if request.can_read_body else ""
        raw = request.query_string
        total = "&".join(x for x in (raw, body) if x)
        parts = total.split("&")
        sig = [p.split("=", 1)[1] for p in parts if p.startswith("signature=")]
        payload = "&".join(p for p in parts if not p.startswith("signature="))
        if not sig:
            raise ApiError(-1102, "Mandatory parameter 'signature' was not sent, was empty/null, "
                           "or malformed.")
        want = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig[-1]):
            raise ApiError(-1022, "Signature for this request is not valid.")
        params = dict(parse_qsl(payload, keep_blank_values=True))
        ts = _int(params, "timestamp")
        if ts is None:
            raise ApiError(-1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, "
                           "or malformed.")
        recv = _int(params, "recvWindow") or 5000
        if recv > 60000:
            raise ApiError(-1131, "recvWindow must be less than 60000")
        now = self.server_time_ms()
        if ts > now + 1000:
            raise ApiError(-1021, "Timestamp for this request was 1000ms ahead of the server's "
                           "time.")
        if now - ts > recv:
            raise ApiError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return params

    # ---- public endpoints -------------------------------------------------------------
    async def _ping(self, request: web.Request) -> web.Response:
        return _json({})

    async def _time(self, request: web.Request) -> web.Response:
        return _json({"serverTime": self.server_time_ms()})

    async def _exchange_info(self, request: web.Request) -> web.Response:
        symbols = []
        for m in self.state.markets.values():
            notional: dict[str, Any]
            if m.quote == "USDT":
                notional = {"filterType": "NOTIONAL", "minNotional": fmt(m.min_notional),
                            "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                            "applyMaxToMarket": False, "avgPriceMins": 5}
            else:
                notional = {"filterType": "MIN_NOTIONAL", "minNotional": fmt(m.min_notional),
                            "applyToMarket": True, "avgPriceMins": 5}
            symbols.append({
                "symbol": m.symbol,
                "status": "TRADING",
                "baseAsset": m.base,
                "baseAssetPrecision": 8,
                "quoteAsset": m.quote,
                "quotePrecision": 8,
                "quoteAssetPrecision": 8,
                "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                               "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True,
                "ocoAllowed": True,
                "otoAllowed": True,
                "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": True,
                "cancelReplaceAllowed": True,
                "amendAllowed": False,
                "isSpotTradingAllowed": True,
                "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": fmt(m.min_price),
                     "maxPrice": fmt(m.max_price), "tickSize": fmt(m.tick_size)},
                    {"filterType": "LOT_SIZE", "minQty": fmt(m.min_qty),
                     "maxQty": fmt(m.max_qty), "stepSize": fmt(m.step_size)},
                    {"filterType": "ICEBERG_PARTS", "limit": 10},
                    {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000",
                     "maxQty": fmt(m.max_qty), "stepSize": "0.00000000"},
                    {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10,
                     "maxTrailingAboveDelta": 2000, "minTrailingBelowDelta": 10,
                     "maxTrailingBelowDelta": 2000},
                    {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5",
                     "bidMultiplierDown": "0.2", "askMultiplierUp": "5",
                     "askMultiplierDown": "0.2", "avgPriceMins": 5},
                    notional,
                    {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                    {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
                ],
                "permissions": [],
                "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER",
                                                    "EXPIRE_BOTH"],
            })
        return _json({
            "timezone": "UTC",
            "serverTime": self.server_time_ms(),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1,
                 "limit": self.weight_limit},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10,
                 "limit": 100},
                {"rateLimitType": "ORDERS", "interval": "DAY", "intervalNum": 1,
                 "limit": 200000},
                {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5,
                 "limit": 61000},
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        })

    async def _klines(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        if "symbol" not in q or "interval" not in q:
            raise ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                           "or malformed.")
        rows = self.state.klines(
            q["symbol"], q["interval"], _int(q, "startTime"), _int(q, "endTime"),
            _int(q, "limit") or 500,
        )
        with self._lock:
            for i, (left, row, values) in enumerate(self.kline_corruptions):
                if left > 0 and row < len(rows):
                    rows[row] = [rows[row][0], *values, *rows[row][6:]]
                    self.kline_corruptions[i] = (left - 1, row, values)
                    self.faults_fired["bad_kline"] += 1
                    break
        return _json(rows)

    def _symbols_param(self, q: Any) -> list[str]:
        if "symbol" in q:
            self.state.market(q["symbol"])
            return [q["symbol"]]
        return list(self.state.markets)

    async def _ticker_price(self, request: web.Request) -> web.Response:
        out = [{"symbol": s, "price": fmt(self.state.price(s))}
               for s in self._symbols_param(request.query)]
        return _json(out[0] if "symbol" in request.query else out)

    async def _ticker_24hr(self, request: web.Request) -> web.Response:
        now = self.server_time_ms()
        out = []
        for s in self._symbols_param(request.query):
            p = self.state.price(s)
            out.append({
                "symbol": s, "priceChange": "0.00000000", "priceChangePercent": "0.000",
                "weightedAvgPrice": fmt(p), "prevClosePrice": fmt(p), "lastPrice": fmt(p),
                "lastQty": "0.00100000", "bidPrice": fmt(p), "bidQty": "1.00000000",
                "askPrice": fmt(p), "askQty": "1.00000000", "openPrice": fmt(p),
                "highPrice": fmt(p), "lowPrice": fmt(p), "volume": "100.00000000",
                "quoteVolume": fmt(p * 100), "openTime": now - 86_400_000, "closeTime": now,
                "firstId": 1, "lastId": 100, "count": 100,
            })
        return _json(out[0] if "symbol" in request.query else out)

    async def _book_ticker(self, request: web.Request) -> web.Response:
        out = []
        for s in self._symbols_param(request.query):
            p = self.state.price(s)
            out.append({"symbol": s, "bidPrice": fmt(p), "bidQty": "1.00000000",
                        "askPrice": fmt(p), "askQty": "1.00000000"})
        return _json(out[0] if "symbol" in request.query else out)

    # ---- signed endpoints -------------------------------------------------------------
    async def _account(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        balances = self.state.account_balances()
        if p.get("omitZeroBalances") == "true":
            balances = [b for b in balances
                        if Decimal(b["free"]) != 0 or Decimal(b["locked"]) != 0]
        fee = "0.00100000"
        return _json({
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {"maker": fee, "taker": fee, "buyer": "0.00000000",
                                "seller": "0.00000000"},
            "canTrade": self.state.can_trade, "canWithdraw": bool(
                self.state.api_restrictions["enableWithdrawals"]),
            "canDeposit": True, "brokered": False, "requireSelfTradePrevention": False,
            "preventSor": False, "updateTime": self.server_time_ms(), "accountType": "SPOT",
            "balances": balances, "permissions": ["SPOT"], "uid": 354937868,
        })

    def _order_answer(self, o: FakeOrder, resp_type: str) -> dict[str, Any]:
        ack = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1,
               "clientOrderId": o.client_order_id, "transactTime": o.time_ms}
        if resp_type == "ACK":
            return ack
        full = o.as_binance()
        for k in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty"):
            full.pop(k, None)
        out = ack | full | {"transactTime": o.time_ms}
        if resp_type == "FULL":
            out["fills"] = list(o.fills)
        return out

    async def _new_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        o = self.state.new_order(p, self.event_time_ms())
        default = "FULL" if o.type in ("MARKET", "LIMIT") else "ACK"
        return _json(self._order_answer(o, p.get("newOrderRespType", default).upper()))

    async def _test_order(self, request: web.Request) -> web.Response:
        await self._signed(request)
        return _json({})

    def _lookup(self, p: dict[str, str]) -> FakeOrder:
        symbol = p.get("symbol")
        self.state.market(symbol)
        assert symbol is not None
        oid = _int(p, "orderId")
        cid = p.get("origClientOrderId")
        if oid is None and not cid:
            raise ApiError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but "
                           "both were empty/null!")
        return self.state.find(symbol, oid, cid)

    async def _get_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        return _json(self._lookup(p).as_binance())

    def _cancel_answer(self, o: FakeOrder, new_cid: str | None) -> dict[str, Any]:
        full = o.as_binance()
        for k in ("time", "updateTime", "isWorking", "stopPrice", "icebergQty", "workingTime"):
            full.pop(k, None)
        return full | {
            "origClientOrderId": o.client_order_id,
            "clientOrderId": new_cid or f"cancel-{o.order_id}",
            "transactTime": o.update_ms,
        }

    async def _cancel_order(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        try:
            o = self._lookup(p)
        except ApiError as e:
            if e.code == -2013:
                raise ApiError(-2011, "Unknown order sent.") from None
            raise
        self.state.cancel(o, self.event_time_ms())
        return _json(self._cancel_answer(o, p.get("newClientOrderId")))

    async def _open_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = p.get("symbol")
        if symbol is not None:
            self.state.market(symbol)
        return _json([o.as_binance() for o in self.state.open_orders(symbol)])

    async def _cancel_all(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = p.get("symbol")
        if not symbol:
            raise ApiError(-1102, "Mandatory parameter 'symbol' was not sent, was empty/null, "
                           "or malformed.")
        self.state.market(symbol)
        now = self.event_time_ms()
        out = []
        for o in self.state.open_orders(symbol):
            self.state.cancel(o, now)
            out.append(self._cancel_answer(o, None))
        return _json(out)

    async def _all_orders(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = p.get("symbol")
        self.state.market(symbol)
        with self.state.lock:
            orders = [o.as_binance() for o in self.state.orders.values() if o.symbol == symbol]
        return _json(orders[-(_int(p, "limit") or 500):])

    async def _my_trades(self, request: web.Request) -> web.Response:
        p = await self._signed(request)
        symbol = p.get("symbol")
        self.state.market(symbol)
        assert symbol is not None
        limit = min(_int(p, "limit") or 500, 1000)
        start, end, from_id = _int(p, "startTime"), _int(p, "endTime"), _int(p, "fromId")
        order_id = _int(p, "orderId")
        if from_id is not None and (start is not None or end is not None):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        if order_id is not None and (start is not None or end is not None):
            raise ApiError(-1128, "Combination of optional parameters invalid.")
        day = 86_400_000
        if start is not None and end is not None and end - start > day:
            raise ApiError(-1127, "More than 24 hours between startTime and endTime.")
        if start is not None and end is None:
            end = start + day
        elif end is not None and start is None:
            start = end - day
        trades = self.state.my_trades(symbol, order_id, start, end, from_id, limit)
        return _json([t.as_binance() for t in trades])

    async def _api_restrictions(self, request: web.Request) -> web.Response:
        await self._signed(request)
        return _json(dict(self.state.api_restrictions))

    async def _capital_config(self, request: web.Request) -> web.Response:
        await self._signed(request)
        return _json([])

    # ---- control plane for other processes ------------------------------------------
    async def _ctl_state(self, request: web.Request) -> web.Response:
        snap = self.state.snapshot()
        with self._lock:
            snap["requests"] = dict(self.requests)
            snap["weight_total"] = self.weight_total
            snap["faults_fired"] = dict(self.faults_fired)
            snap["outage"] = self._outage
        return _json(snap)

    _CONTROL_OPS = frozenset({
        "set_market_time", "run_market_from", "run_market_live", "set_price", "set_liquidity",
        "set_balance",
        "fail_orders_after_accept", "fail_requests", "rate_limit", "timestamp_errors",
        "hang_requests", "clear_faults", "start_outage", "end_outage", "set_clock_skew",
        "reset_counters",
    })

    async def _ctl_control(self, request: web.Request) -> web.Response:
        body = await request.json()
        op = body.pop("op", None)
        if op not in self._CONTROL_OPS:
            return _json({"error": f"unknown op {op!r}"}, status=400)
        if op == "start_outage":  # the sync wrappers wait on this very loop
            mode = body.get("mode", "refuse")
            if mode not in ("refuse", "503"):
                return _json({"error": f"outage mode must be 'refuse' or '503', not {mode!r}"},
                             status=400)
            await self._start_outage(mode, body.get("duration_s"))
        elif op == "end_outage":
            await self._end_outage()
        else:
            getattr(self, op)(**body)
        return _json({"ok": True})
