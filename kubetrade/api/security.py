"""HTTP hardening as one pure ASGI middleware: security headers, body size limit,
request metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming and WebSockets are untouched and
the cost per request stays a few dict operations.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)

SECURITY_HEADERS: list[tuple[bytes, bytes]] = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cache-control", b"no-store"),
]


_UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
_LOOPBACK_NAMES = {"localhost", "[::1]", "::1"}


def _is_loopback_host(host: str) -> bool:
    """``host`` is a Host header value (name[:port]); loopback names and 127/8 only."""
    name = host.lower()
    if name.startswith("["):
        name = name[: name.find("]") + 1]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name in _LOOPBACK_NAMES:
        return True
    parts = name.split(".")
    return len(parts) == 4 and parts[0] == "127" and all(p.isdigit() for p in parts)


def origin_allowed(
    origin: str | None, host: str | None, allowed: list[str], auth_enabled: bool
) -> bool:
    """May a browser page from ``origin`` act on this API?

    No Origin: not a browser page (curl, scripts, the Telegram bot). A listed CORS
    origin, or the page's own origin. Without a password the API has no other defence,
    so "its own origin" must also be a loopback name: a rebound DNS name (evil.example
    resolving to 127.0.0.1) makes any page same-origin with us."""
    if origin is None:
        return True
    if origin in allowed:
        return True
    if not host:
        return False
    netloc = origin.split("://", 1)[1] if "://" in origin else ""
    if netloc.lower() != host.lower():
        return False
    return auth_enabled or _is_loopback_host(host)


class _TooLarge(HTTPException):
    """An HTTPException, so FastAPI's body parsing re-raises it as a 413 response
    instead of turning it into a generic 400."""

    def __init__(self) -> None:
        super().__init__(status_code=413, detail="request body too large")


class ApiMetrics:
    """The API's own Prometheus metrics, in a registry of its own so several apps (tests)
    can live in one process."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "kubetrade_api_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "kubetrade_api_request_seconds",
            "HTTP request latency by route template.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        self.login_failures = Counter(
            "kubetrade_api_login_failures_total",
            "Failed logins (wrong credentials or rate-limited).",
            registry=self.registry,
        )
        self.ws_dropped = Counter(
            "kubetrade_api_ws_resyncs_total",
            "WebSocket clients whose queue overflowed and were told to resync.",
            registry=self.registry,
        )


_TOO_LARGE_BODY = b'{"detail":"request body too large"}'


class _Guard:
    """One request's ``receive`` and ``send``: counts body bytes against the limit
    (raising :class:`_TooLarge` past it), adds the security headers to the response,
    and remembers the status sent (500 until one is)."""

    def __init__(self, receive: Receive, send: Send, max_body: int) -> None:
        self._receive = receive
        self._send = send
        self._max_body = max_body
        self._received = 0
        self.code = 500
        self.sent = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message["type"] == "http.request":
            self._received += len(message.get("body", b""))
            if self._received > self._max_body:
                raise _TooLarge
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.code = int(message["status"])
            self.sent = True
            headers = list(message.get("headers", []))
            present = {k.lower() for k, _ in headers}
            headers.extend(h for h in SECURITY_HEADERS if h[0] not in present)
            message = {**message, "headers": headers}
        await self._send(message)


class HardeningMiddleware:
    """Refuses oversized bodies (413) and, without a password, state changes from a
    foreign Origin (403); adds :data:`SECURITY_HEADERS` to every HTTP response; counts
    requests and latency by route template in ``metrics``. WebSockets pass untouched."""

    def __init__(
        self,
        app: ASGIApp,
        max_body_bytes: int,
        metrics: ApiMetrics,
        allowed_origins: list[str] | None = None,
        auth_enabled: bool = True,
    ) -> None:
        self.app = app
        self.max_body = max_body_bytes
        self.metrics = metrics
        self.allowed_origins = list(allowed_origins or [])
        self.auth_enabled = auth_enabled

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        refusal = self._refusal(scope)
        if refusal is not None:
            code, body = refusal
            await _plain(send, code, body)
            self._observe(scope, code, started)
            return
        guard = _Guard(receive, send, self.max_body)
        try:
            await self.app(scope, guard.receive, guard.send)
        except _TooLarge:
            if not guard.sent:
                await _plain(send, 413, _TOO_LARGE_BODY)
                guard.code = 413
        finally:
            self._observe(scope, guard.code, started)

    def _refusal(self, scope: Scope) -> tuple[int, bytes] | None:
        """``(status, body)`` of a request refused before the app sees it: a declared
        body over the limit (413), or without a password a change from a foreign
        Origin (403). None lets it through."""
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.max_body
                except ValueError:
                    too_big = True
                if too_big:
                    return 413, _TOO_LARGE_BODY
        if not self.auth_enabled and scope.get("method") in _UNSAFE_METHODS:
            # A cross-site fetch POST without a body needs no CORS preflight: the browser
            # sends it and only hides the answer. With no password nothing else stops
            # it, so changes need an acceptable Origin. (With a password the bearer
            # token, never sent by a browser on its own, is the defence; a proxy that
            # rewrites Host must not break the dashboard's kill switch.)
            headers = dict(scope.get("headers", []))
            origin = headers.get(b"origin")
            host = headers.get(b"host")
            if not origin_allowed(
                origin.decode("latin-1") if origin is not None else None,
                host.decode("latin-1") if host is not None else None,
                self.allowed_origins,
                self.auth_enabled,
            ):
                return 403, b'{"detail":"origin not allowed to change state"}'
        return None

    def _observe(self, scope: Scope, code: int, started: float) -> None:
        route: Any = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        elapsed = time.perf_counter() - started
        self.metrics.requests.labels(path, scope.get("method", ""), str(code)).inc()
        self.metrics.latency.labels(path).observe(elapsed)


async def _plain(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *SECURITY_HEADERS,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
