"""``WebSocket /api/ws``: runner events pushed live to the dashboard.

The Origin is checked before the handshake (a page from another site must not read
the stream); with a password the client authenticates with ``?token=<access>`` or a
first message ``{"type": "auth", "token": ...}``, and is closed (4401) when its token
expires. Fan-out and back-pressure live in :class:`kubetrade.api.ws.EventHub`.
"""

import asyncio
import contextlib
import json

from fastapi import APIRouter
from starlette.websockets import WebSocket, WebSocketDisconnect

from kubetrade.api.auth import AuthError
from kubetrade.api.deps import ApiContext, Ctx
from kubetrade.api.security import origin_allowed
from kubetrade.api.ws import Client

router = APIRouter()


def _origin_ok(ws: WebSocket, ctx: ApiContext) -> bool:
    # no Origin: not a browser (browsers always send Origin on WebSockets)
    return origin_allowed(
        ws.headers.get("origin"),
        ws.headers.get("host"),
        list(ctx.settings.cors_origins),
        ctx.auth_enabled,
    )


async def _first_message_token(ws: WebSocket, wait_seconds: float) -> str | None:
    """The token of an ``{"type": "auth"}`` first message; None when the client sends
    something else, nothing within ``wait_seconds``, or goes away."""
    try:
        async with asyncio.timeout(wait_seconds):
            msg = json.loads(await ws.receive_text())
    except (TimeoutError, ValueError, WebSocketDisconnect, RuntimeError):
        return None
    if isinstance(msg, dict) and msg.get("type") == "auth":
        return str(msg.get("token") or "")
    return None


async def _authenticate(
    ws: WebSocket, ctx: ApiContext, token: str | None
) -> tuple[str, int | None] | None:
    """``(username, token expiry in epoch seconds)`` of an accepted socket; without a
    password ``("anonymous", None)``. None after closing the socket with 4401."""
    if ctx.password is None:
        return "anonymous", None
    candidate = token
    if candidate is None:
        candidate = await _first_message_token(ws, ctx.settings.ws_auth_timeout_seconds)
    try:
        who = await ctx.tokens.verify_access(candidate or "")
    except AuthError:
        with contextlib.suppress(Exception):
            await ws.close(code=4401, reason="unauthorized")
        return None
    return who.username, int((who.claims or {}).get("exp", 0))


async def _drain(ws: WebSocket, client: Client) -> None:
    """Read (and mostly ignore) client messages; answer pings; end on disconnect."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text and text.strip() == '{"type":"ping"}':
            client.offer('{"type":"pong"}')


async def _session(ws: WebSocket, ctx: ApiContext, client: Client, expires_at: int | None) -> None:
    """Pump events to ``client`` and read its messages until either side ends or the
    token expires (then close 4401: the client reconnects with a fresh token)."""
    sender = asyncio.create_task(client.pump())
    receiver = asyncio.create_task(_drain(ws, client))
    timeout = None
    if expires_at is not None:
        timeout = max(0.0, expires_at - ctx.clock.now_ms() / 1000)
    done, pending = await asyncio.wait(
        {sender, receiver}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
    )
    for task in pending:
        task.cancel()
    for task in pending:
        with contextlib.suppress(BaseException):
            await task
    if not done:
        with contextlib.suppress(Exception):
            await ws.close(code=4401, reason="token expired")


@router.websocket("/api/ws")
async def websocket(ws: WebSocket, ctx: Ctx, token: str | None = None) -> None:
    """Live events. Authenticate with ``?token=<access>`` or a first message
    ``{"type": "auth", "token": "<access>"}``. Messages are runner events
    (``{"type", "ts_ms", "strategy", "data"}``); ``{"type": "resync"}`` means
    events were dropped and state should be re-read."""
    if not _origin_ok(ws, ctx):
        await ws.close(code=1008)
        return
    await ws.accept()
    who = await _authenticate(ws, ctx, token)
    if who is None:
        return
    user, expires_at = who
    hub = ctx.hub
    hub.ensure_started()
    await hub.wait_ready()
    client = Client(ws, hub.queue_size)
    hub.clients.add(client)
    try:
        hello = {"type": "hello", "ts_ms": ctx.clock.now_ms(), "user": user}
        await ws.send_text(json.dumps(hello))
        await _session(ws, ctx, client, expires_at)
    except (WebSocketDisconnect, RuntimeError, OSError):
        pass
    finally:
        hub.clients.discard(client)
