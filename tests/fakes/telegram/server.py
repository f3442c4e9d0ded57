"""A local fake of the Telegram Bot API, for python-telegram-bot's ``base_url``.

It speaks the wire format of https://core.telegram.org/bots/api (``/bot<token>/<method>``,
form/JSON/query parameters, ``{"ok": ..., "result": ...}`` envelopes, error objects with
``error_code``, ``description`` and ``parameters.retry_after``), so the real client's
request building, long polling and error mapping run unchanged. Tests drive it:
``deliver_command`` / ``press_button`` queue updates for ``getUpdates``; ``messages``
records what the bot sent; ``fail_next``, ``rate_limit_next``, ``hang_next`` and
``go_down``/``come_up`` inject the failures a bot meets in production.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

JSON = dict[str, Any]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class SentMessage:
    """A message the bot sent (sendMessage), as Telegram stored it."""

    message_id: int
    chat_id: int
    text: str
    reply_markup: JSON | None = None
    parse_mode: str | None = None
    edits: list[str] = field(default_factory=list)

    @property
    def buttons(self) -> list[JSON]:
        if not self.reply_markup:
            return []
        return [b for row in self.reply_markup.get("inline_keyboard", []) for b in row]


@dataclass
class _Fault:
    status: int
    description: str
    parameters: JSON | None = None
    methods: frozenset[str] | None = None  # None = any method
    delay: float = 0.0


class FakeTelegram:
    """The fake server. Not thread-safe: it runs in the test's event loop."""

    def __init__(
        self, token: str = "123456:FAKE-token-ABCdef_ghi", bot_id: int = 123456  # noqa: S107
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.bot_username = "kubetrade_test_bot"
        self.port = free_port()
        self.messages: list[SentMessage] = []
        self.callback_answers: list[JSON] = []
        self.requests: list[tuple[str, JSON]] = []  # (method, params) of every accepted call
        self.commands: list[JSON] = []  # last setMyCommands
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._confirmed_offset = 0
        self._changed = asyncio.Condition()
        self._faults: list[_Fault] = []
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None
        self._pollers = 0
        self._down = False
        self._migrated: dict[int, int] = {}
        self.failed_requests = 0

    # -- lifecycle ------------------------------------------------------------------
    @property
    def root_url(self) -> str:
        """Server root, the form of ``TELEGRAM_API_BASE_URL``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """Value for ``ApplicationBuilder().base_url`` (the token is appended by PTB)."""
        return f"http://127.0.0.1:{self.port}/bot"

    @property
    def base_file_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/file/bot"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await self._runner.setup()
        await self._bind()

    async def _bind(self) -> None:
        assert self._runner is not None
        self._site = web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True)
        await self._site.start()

    async def stop(self) -> None:
        # release open long polls first, or cleanup waits for each to time out
        self._down = True
        await self._notify()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self._site = None

    @property
    def is_up(self) -> bool:
        return self._site is not None

    async def go_down(self) -> None:
        """Full outage: the port refuses connections and open long polls are cut."""
        self._down = True
        if self._site is not None:
            await self._site.stop()
            self._site = None
        async with self._changed:
            self._changed.notify_all()

    async def come_up(self) -> None:
        if self._site is None:
            await self._bind()
        self._down = False

    # -- fault injection ------------------------------------------------------------
    def fail_next(
        self, count: int = 1, status: int = 500, methods: set[str] | None = None
    ) -> None:
        """The next ``count`` calls (of ``methods``, default all) answer a server error."""
        phrase = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        for _ in range(count):
            self._faults.append(
                _Fault(status, phrase.get(status, "Error"), None, _frozen(methods))
            )

    def rate_limit_next(
        self, retry_after: int, count: int = 1, methods: set[str] | None = None
    ) -> None:
        """The next ``count`` calls answer 429 with ``parameters.retry_after``."""
        for _ in range(count):
            self._faults.append(
                _Fault(
                    429,
                    f"Too Many Requests: retry after {retry_after}",
                    {"retry_after": retry_after},
                    _frozen(methods),
                )
            )

    def hang_next(self, seconds: float, count: int = 1, methods: set[str] | None = None) -> None:
        """The next ``count`` calls stall ``seconds`` before answering (client timeouts)."""
        for _ in range(count):
            self._faults.append(_Fault(200, "", None, _frozen(methods), delay=seconds))

    def migrate_chat(self, old_id: int, new_id: int) -> None:
        """The group was upgraded to a supergroup: sends to ``old_id`` answer 400 with
        ``parameters.migrate_to_chat_id`` (as Telegram does)."""
        self._migrated[old_id] = new_id

    def _take_fault(self, method: str) -> _Fault | None:
        for i, fault in enumerate(self._faults):
            if fault.methods is None or method in fault.methods:
                return self._faults.pop(i)
        return None

    # -- updates the "users" send ---------------------------------------------------
    def _push(self, update: JSON) -> int:
        update_id = next(self._update_ids)
        update["update_id"] = update_id
        self._updates.append(update)
        return update_id

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _message(
        self, text: str, chat_id: int, user_id: int, chat_type: str = "private",
        date: int | None = None,
    ) -> JSON:
        message: JSON = {
            "message_id": next(self._message_ids),
            "date": int(time.time()) if date is None else date,
            "chat": _chat(chat_id, chat_type),
            "from": _user(user_id),
            "text": text,
        }
        if text.startswith("/"):
            command = text.split()[0]
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        return message

    async def deliver_command(
        self, text: str, chat_id: int, user_id: int, chat_type: str | None = None,
        date: int | None = None,
    ) -> int:
        """A user types ``text`` (e.g. ``/stop``) in ``chat_id``; returns the update id.
        Negative chat ids are groups (as in Telegram), positive ones private chats."""
        kind = chat_type or ("supergroup" if chat_id < 0 else "private")
        update_id = self._push({"message": self._message(text, chat_id, user_id, kind, date)})
        await self._notify()
        return update_id

    async def deliver_raw(self, update: JSON) -> int:
        """Queue an arbitrary update body (``update_id`` is assigned here)."""
        update_id = self._push(dict(update))
        await self._notify()
        return update_id

    def queue_raw(self, update: JSON) -> int:
        """Like ``deliver_raw`` without waking pollers (for bulk queuing)."""
        return self._push(dict(update))

    async def press_button(
        self, message: SentMessage, data: str, user_id: int, chat_id: int | None = None
    ) -> int:
        """A user presses the inline button with callback ``data`` under ``message``."""
        query = {
            "id": str(next(self._message_ids)),
            "from": _user(user_id),
            "chat_instance": "ci-1",
            "data": data,
            "message": {
                "message_id": message.message_id,
                "date": int(time.time()),
                "chat": _chat(chat_id if chat_id is not None else message.chat_id),
                "from": _user(self.bot_id, is_bot=True, username=self.bot_username),
                "text": message.text,
                **({"reply_markup": message.reply_markup} if message.reply_markup else {}),
            },
        }
        update_id = self._push({"callback_query": query})
        await self._notify()
        return update_id

    @property
    def pending_updates(self) -> int:
        return len(self._updates)

    # -- waiting on the bot ---------------------------------------------------------
    async def wait_for(self, predicate: Callable[[], bool], within: float = 30.0) -> None:
        async def _wait() -> None:
            async with self._changed:
                await self._changed.wait_for(predicate)

        await asyncio.wait_for(_wait(), within)

    async def wait_for_message(
        self,
        predicate: Callable[[SentMessage], bool] = lambda m: True,
        within: float = 30.0,
        after: int = 0,
    ) -> SentMessage:
        """First message (index >= ``after``) matching ``predicate``, waiting for it."""
        found: list[SentMessage] = []

        def check() -> bool:
            for m in self.messages[after:]:
                if predicate(m):
                    found.append(m)
                    return True
            return False

        await self.wait_for(check, within)
        return found[0]

    async def wait_consumed(self, update_id: int, within: float = 30.0) -> None:
        """Wait until the bot confirmed ``update_id`` (asked for a later offset)."""
        await self.wait_for(lambda: self._confirmed_offset > update_id, within)

    async def wait_polling(self, within: float = 30.0) -> None:
        """Wait until the bot has an open getUpdates long poll."""
        await self.wait_for(lambda: self._pollers > 0, within)

    def messages_to(self, chat_id: int) -> list[SentMessage]:
        return [m for m in self.messages if m.chat_id == chat_id]

    # -- the Bot API ----------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        token = request.match_info["token"]
        method = request.match_info["method"]
        if self._down:
            # a kept-alive connection outlives the listener; cut it like a dead host would
            self.failed_requests += 1
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=503)
        if token != self.token:
            return _error(401, "Unauthorized")
        params = await _params(request)
        fault = self._take_fault(method)
        if fault is not None:
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.status != 200:
                self.failed_requests += 1
                return _error(fault.status, fault.description, fault.parameters)
        handler = getattr(self, f"_api_{method.lower()}", None)
        if handler is None:
            return _error(404, "Not Found")
        self.requests.append((method, params))
        try:
            result = await handler(params)
        except _ApiError as exc:
            if self._down and request.transport is not None:
                request.transport.close()
            return _error(exc.code, exc.description, exc.parameters)
        await self._notify()
        return web.json_response({"ok": True, "result": result})

    async def _api_getme(self, params: JSON) -> JSON:
        return _user(self.bot_id, is_bot=True, username=self.bot_username) | {
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def _api_deletewebhook(self, params: JSON) -> bool:
        if _bool(params.get("drop_pending_updates")):
            self._updates.clear()
        return True

    async def _api_getwebhookinfo(self, params: JSON) -> JSON:
        return {"url": "", "has_custom_certificate": False, "pending_update_count": 0}

    async def _api_setmycommands(self, params: JSON) -> bool:
        self.commands = _json(params.get("commands")) or []
        return True

    async def _api_getmycommands(self, params: JSON) -> list[JSON]:
        return self.commands

    async def _api_close(self, params: JSON) -> bool:
        return True

    async def _api_logout(self, params: JSON) -> bool:
        return True

    async def _api_getupdates(self, params: JSON) -> list[JSON]:
        offset = int(params.get("offset") or 0)
        limit = max(1, min(100, int(params.get("limit") or 100)))
        timeout = float(params.get("timeout") or 0)
        if offset:
            self._confirmed_offset = max(self._confirmed_offset, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]

        def ready() -> bool:
            return bool(self._updates) or self._down

        if not ready() and timeout > 0:
            self._pollers += 1
            await self._notify()
            try:
                async with self._changed:
                    await asyncio.wait_for(self._changed.wait_for(ready), timeout)
            except TimeoutError:
                pass
            finally:
                self._pollers -= 1
        if self._down:
            self.failed_requests += 1
            raise _ApiError(503, "fake Telegram is down")
        return self._updates[:limit]

    async def _api_sendmessage(self, params: JSON) -> JSON:
        chat_id = _chat_id(params)
        if chat_id in self._migrated:
            raise _ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                            {"migrate_to_chat_id": self._migrated[chat_id]})
        text = str(params.get("text") or "")
        if not text.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if len(text) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        message = SentMessage(
            message_id=next(self._message_ids),
            chat_id=chat_id,
            text=text,
            reply_markup=_json(params.get("reply_markup")),
            parse_mode=params.get("parse_mode"),
        )
        self.messages.append(message)
        return {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": _chat(chat_id),
            "from": _user(self.bot_id, is_bot=True, username=self.bot_username),
            "text": text,
            **({"reply_markup": message.reply_markup} if message.reply_markup else {}),
        }

    async def _api_editmessagetext(self, params: JSON) -> JSON:
        chat_id = _chat_id(params)
        message_id = int(params.get("message_id") or 0)
        for message in self.messages:
            if message.message_id == message_id and message.chat_id == chat_id:
                message.edits.append(message.text)
                message.text = str(params.get("text") or "")
                message.reply_markup = _json(params.get("reply_markup"))
                return {
                    "message_id": message_id,
                    "date": int(time.time()),
                    "chat": _chat(chat_id),
                    "text": message.text,
                }
        raise _ApiError(400, "Bad Request: message to edit not found")

    async def _api_editmessagereplymarkup(self, params: JSON) -> JSON:
        chat_id = _chat_id(params)
        message_id = int(params.get("message_id") or 0)
        for message in self.messages:
            if message.message_id == message_id and message.chat_id == chat_id:
                message.reply_markup = _json(params.get("reply_markup"))
                return {"message_id": message_id, "date": int(time.time()),
                        "chat": _chat(chat_id), "text": message.text}
        raise _ApiError(400, "Bad Request: message to edit not found")

    async def _api_answercallbackquery(self, params: JSON) -> bool:
        self.callback_answers.append(params)
        return True


class _ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


def _frozen(methods: set[str] | None) -> frozenset[str] | None:
    return frozenset(methods) if methods is not None else None


def _error(status: int, description: str, parameters: JSON | None = None) -> web.Response:
    body: JSON = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


async def _params(request: web.Request) -> JSON:
    """Parameters the way the Bot API accepts them: query string, urlencoded, multipart, JSON."""
    params: JSON = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    return params


def _json(value: Any) -> Any:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return json.loads(value)
    return value


def _bool(value: Any) -> bool:
    return value in (True, "true", "True", "1")


def _chat_id(params: JSON) -> int:
    try:
        return int(params["chat_id"])
    except (KeyError, ValueError) as exc:
        raise _ApiError(400, "Bad Request: chat not found") from exc


def _chat(chat_id: int, chat_type: str | None = None) -> JSON:
    chat_type = chat_type or ("supergroup" if chat_id < 0 else "private")
    chat: JSON = {"id": chat_id, "type": chat_type}
    if chat_type == "private":
        chat["first_name"] = f"user{chat_id}"
    else:
        chat["title"] = f"chat{chat_id}"
    return chat


def _user(user_id: int, is_bot: bool = False, username: str | None = None) -> JSON:
    user: JSON = {"id": user_id, "is_bot": is_bot, "first_name": f"user{user_id}"}
    if username:
        user["username"] = username
    return user
