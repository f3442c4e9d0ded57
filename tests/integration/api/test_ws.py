"""WebSocket /api/ws on a real uvicorn socket with real Redis pub/sub."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from kubetrade.state.events import EventType, publish_event
from tests.fixtures.api import ApiHandle, MakeApi, serve


def _ws_url(api: ApiHandle, token: str | None = None) -> str:
    url = api.base_url.replace("http://", "ws://") + "/api/ws"
    return f"{url}?token={token}" if token else url


async def _recv(ws: ClientConnection, limit_s: float = 10) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), limit_s))
    return data


async def _until(ws: ClientConnection, predicate: Any, limit_s: float = 10) -> dict[str, Any]:
    async with asyncio.timeout(limit_s):
        while True:
            msg = await _recv(ws, limit_s)
            if predicate(msg):
                return msg


async def test_ws_refuses_without_valid_token(api_server: ApiHandle) -> None:
    for token in (None, "garbage"):
        async with connect(_ws_url(api_server, token)) as ws:
            if token is None:
                await ws.send(json.dumps({"type": "auth", "token": "nope"}))
            with pytest.raises(ConnectionClosed) as info:
                await _recv(ws)
            assert info.value.rcvd is not None and info.value.rcvd.code == 4401


async def test_ws_pushes_published_events(api_server: ApiHandle) -> None:
    api = api_server
    token = await api.token()
    async with connect(_ws_url(api, token)) as ws:
        hello = await _recv(ws)
        assert hello["type"] == "hello" and hello["user"] == "admin"
        await publish_event(api.redis, api.keys, EventType.TRADE, 1, {"trade_id": "t1"}, "btc")
        msg = await _until(ws, lambda m: m["type"] == "trade")
        assert msg["data"] == {"trade_id": "t1"} and msg["strategy"] == "btc"


async def test_ws_auth_by_first_message_and_emergency_events(api_server: ApiHandle) -> None:
    api = api_server
    async with connect(_ws_url(api)) as ws:
        await ws.send(json.dumps({"type": "auth", "token": await api.token()}))
        assert (await _recv(ws))["type"] == "hello"
        r = await api.client.post(
            "/api/emergency/stop", json={"reason": "ws test"}, headers=await api.auth()
        )
        assert r.status_code == 200
        msg = await _until(ws, lambda m: m["type"] == "emergency")
        assert msg["data"]["action"] == "stop"


async def _raw_slow_client(url: str, token: str) -> tuple[asyncio.StreamReader, Any]:
    """A WebSocket client with a 4 KiB receive buffer that does not read: the server's
    sends to it back up after a few MB, as with a client on a stalled network."""
    host, port = url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (host, int(port)))
    reader, writer = await asyncio.open_connection(sock=sock)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /api/ws?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert head.startswith(b"HTTP/1.1 101"), head
    return reader, writer


async def test_slow_client_does_not_block_fast_client(make_api: MakeApi) -> None:
    api = await make_api(ws_queue_size=16)
    async with serve(api.app) as url:
        api.base_url = url
        token = await api.token()
        n, payload = 3000, "x" * 4096
        slow_reader, slow_writer = await _raw_slow_client(url, token)
        async with connect(_ws_url(api, token)) as fast:
            assert (await _recv(fast))["type"] == "hello"
            async with asyncio.timeout(10):
                while len(api.app.state.hub.clients) < 2:  # noqa: ASYNC110 - no event to wait on
                    await asyncio.sleep(0.01)

            async def publish() -> None:
                for i in range(n):
                    await publish_event(
                        api.redis, api.keys, EventType.EQUITY, i, {"i": i, "pad": payload}
                    )

            got: list[int] = []

            async def consume() -> None:
                while len(got) < n:
                    msg = await _recv(fast, 30)
                    if msg["type"] == "equity":
                        got.append(msg["data"]["i"])

            # the fast client gets every event while the slow one reads nothing
            await asyncio.wait_for(asyncio.gather(publish(), consume()), 120)
            assert got == list(range(n))

            # the slow client's backlog was dropped for a resync message
            data = b""
            async with asyncio.timeout(60):
                while b"resync" not in data:
                    chunk = await slow_reader.read(1 << 20)
                    assert chunk, "slow client disconnected"
                    data += chunk
            assert data.count(b'"type":"equity"') < n
            slow_writer.close()
            metrics = await api.client.get("/metrics")
            resyncs = [
                float(line.split()[1])
                for line in metrics.text.splitlines()
                if line.startswith("kubetrade_api_ws_resyncs_total ")
            ]
            assert resyncs and resyncs[0] >= 1


async def test_ws_without_password_needs_no_token_but_checks_origin(make_api: MakeApi) -> None:
    api = await make_api(dashboard_password=None)
    async with serve(api.app) as url:
        api.base_url = url
        async with connect(_ws_url(api)) as ws:
            assert (await _recv(ws))["user"] == "anonymous"
        # a page on another origin may not read the unauthenticated feed
        with pytest.raises(Exception) as info:
            async with connect(_ws_url(api), origin="https://evil.example.com") as ws:  # type: ignore[arg-type]
                await _recv(ws)
        assert "403" in str(info.value) or "1008" in str(info.value)


async def test_ws_closes_when_the_access_token_expires(make_api: MakeApi) -> None:
    from kubetrade.domain.clock import ManualClock

    clock = ManualClock(1_800_000_000_000)
    api = await make_api(clock=clock)
    async with serve(api.app) as url:
        api.base_url = url
        token = await api.token()
        clock.advance(900 - 1)  # one second of validity left
        async with connect(_ws_url(api, token)) as ws:
            assert (await _recv(ws))["type"] == "hello"
            with pytest.raises(ConnectionClosed) as info:
                await _recv(ws, limit_s=30)
            assert info.value.rcvd is not None and info.value.rcvd.code == 4401
            assert info.value.rcvd.reason == "token expired"
