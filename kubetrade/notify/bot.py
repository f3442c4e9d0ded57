"""The Telegram commands of the runbook, on python-telegram-bot.

Who may command: exactly one chat (``TELEGRAM_CHAT_ID``) and, when
``TELEGRAM_ALLOWED_USER_IDS`` is set, only those users in it. A gate handler in
group -1 runs before every other handler; for anything else it stops the update
(``ApplicationHandlerStop``) so no command handler runs, and audits the attempt —
rate-limited, so a flood from strangers cannot fill Redis.

What commands do: the same thing the API's emergency endpoints do, through
:class:`kubetrade.state.desired.DesiredState` ``set_emergency`` (the Emergency
resource in a cluster, Redis locally), with ``telegram:<user id>`` as the actor, and
every command is audited. ``/closeall`` sells everything at market, so it asks first:
an inline Confirm/Cancel keyboard that only the asking user can answer and that
expires.
"""

from __future__ import annotations

import asyncio
import logging
import re
import secrets
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from telegram import (
    BotCommand,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    Update,
)
from telegram.error import TelegramError
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    TypeHandler,
    filters,
)

from kubetrade.domain.clock import Clock, SystemClock
from kubetrade.domain.emergency import EmergencyAction
from kubetrade.notify.dispatcher import ChatTarget
from kubetrade.notify.gate import (
    PendingConfirm,
    RejectAuditLimiter,
    actor_of,
    cancelled_count,
    update_kind,
)
from kubetrade.notify.paging import fit, pages
from kubetrade.notify.settings import NotifySettings
from kubetrade.notify.text import (
    HELP,
    emergency_line,
    pnl_lines,
    position_lines,
    runner_line,
    twin_line,
    when,
)
from kubetrade.state.audit import AuditEntry, write_audit
from kubetrade.state.client import Redis
from kubetrade.state.desired import DesiredState, DesiredStateError, NotFoundError
from kubetrade.state.keys import Keys
from kubetrade.state.overview import read_overview, strategy_names

log = logging.getLogger(__name__)

__all__ = ["NotifyBot", "RejectAuditLimiter", "actor_of", "cancelled_count"]

Ctx = ContextTypes.DEFAULT_TYPE
App = Application[Any, Any, Any, Any, Any, Any]

COMMANDS = {
    "status": "Emergency state, runners, positions",
    "positions": "Open positions",
    "pnl": "Profit and loss per strategy",
    "stop": "Halt trading and cancel pending orders",
    "closeall": "Halt and close all positions at market (asks first)",
    "resume": "Resume trading after an emergency stop",
    "help": "List the commands",
}
CLOSEALL_DATA = re.compile(r"^closeall:(yes|no):([0-9a-f]{16})$")
ACK_WAIT_SECONDS = 30.0
MAX_COMMAND_AGE_SECONDS = 120.0


@dataclass(eq=False)
class NotifyBot:
    """The command side of ``kubetrade notify``. ``build()`` returns the PTB Application."""

    settings: NotifySettings
    redis: Redis
    keys: Keys
    desired: DesiredState
    clock: Clock = field(default_factory=SystemClock)
    target: ChatTarget = field(init=False)
    allowed_users: frozenset[int] = field(init=False)
    confirm_ms: int = field(init=False)
    ack_wait_seconds: float = field(default=ACK_WAIT_SECONDS, init=False)
    max_command_age_seconds: float = field(default=MAX_COMMAND_AGE_SECONDS, init=False)
    reject_limiter: RejectAuditLimiter = field(init=False)
    _pending: dict[str, PendingConfirm] = field(default_factory=dict, init=False)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set, init=False)
    _closing: bool = field(default=False, init=False)
    # figures: which handlers ran, how many updates were turned away
    handled: Counter[str] = field(default_factory=Counter, init=False)
    rejected: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.target = ChatTarget(self.settings.telegram_chat_id)
        self.allowed_users = frozenset(self.settings.telegram_allowed_user_ids)
        self.confirm_ms = self.settings.telegram_confirm_seconds * 1000
        self.reject_limiter = RejectAuditLimiter(self.clock)

    # -- wiring -------------------------------------------------------------------
    def build(self, builder: ApplicationBuilder[Any, Any, Any, Any, Any, Any] | None = None) -> App:
        token = self.settings.telegram_bot_token.get_secret_value()
        b = builder or ApplicationBuilder()
        app: App = (
            b.token(token)
            .base_url(self.settings.bot_base_url)
            .base_file_url(self.settings.file_base_url)
            .build()
        )
        self.install(app)
        return app

    def install(self, app: App) -> None:
        app.add_handler(TypeHandler(Update, self._gate), group=-1)
        handlers: dict[str, Callable[[Update, Ctx], Awaitable[None]]] = {
            "help": self.cmd_help,
            "start": self.cmd_help,
            "status": self.cmd_status,
            "positions": self.cmd_positions,
            "pnl": self.cmd_pnl,
            "stop": self.cmd_stop,
            "closeall": self.cmd_closeall,
            "resume": self.cmd_resume,
        }
        for name, fn in handlers.items():
            # new messages only: editing an old message into "/resume" is not a command
            app.add_handler(CommandHandler(name, self._counted(name, fn),
                                           filters=filters.UpdateType.MESSAGE))
        app.add_handler(
            CallbackQueryHandler(self._counted("closeall_button", self.on_closeall_button),
                                 pattern=CLOSEALL_DATA)
        )
        app.add_error_handler(self._on_error)

    async def register_commands(self, app: App) -> None:
        """The command menu in Telegram's UI (``run_polling`` would call this as
        post_init; the notifier drives the application itself)."""
        try:
            await app.bot.set_my_commands([BotCommand(c, d) for c, d in COMMANDS.items()])
        except TelegramError as exc:  # a menu is a nicety; never block start-up on it
            log.warning("setMyCommands failed: %s", exc)

    def _counted(
        self, name: str, fn: Callable[[Update, Ctx], Awaitable[None]]
    ) -> Callable[[Update, Ctx], Coroutine[Any, Any, None]]:
        async def run(update: Update, context: Ctx) -> None:
            self.handled[name] += 1
            await fn(update, context)

        return run

    # -- who may command ----------------------------------------------------------
    def allowed(self, update: Update) -> bool:
        chat = update.effective_chat
        user = update.effective_user
        if chat is None or user is None or chat.id not in self.target.ids:
            return False
        return not self.allowed_users or user.id in self.allowed_users

    async def _gate(self, update: Update, context: Ctx) -> None:
        if self.allowed(update):
            await self._refuse_stale(update)
            return
        self.rejected += 1
        if self.reject_limiter.allow():
            chat = update.effective_chat
            user = update.effective_user
            message = update.effective_message
            text = (message.text or "") if message else ""
            if update.callback_query is not None:
                text = update.callback_query.data or ""
            try:
                await write_audit(
                    self.redis,
                    self.keys,
                    AuditEntry(
                        ts_ms=self.clock.now_ms(),
                        actor=actor_of(update),
                        action="telegram.rejected",
                        detail={
                            "chat_id": chat.id if chat else None,
                            "user_id": user.id if user else None,
                            "update": update_kind(update),
                            "text": text[:64],
                            "suppressed_before": self.reject_limiter.take_suppressed(),
                        },
                    ),
                )
            except Exception as exc:  # the refusal itself must not depend on Redis
                log.warning("could not audit a rejected update: %s", type(exc).__name__)
        raise ApplicationHandlerStop

    async def _refuse_stale(self, update: Update) -> None:
        """A command typed while the notifier was down must not act minutes later: a
        stale /resume could undo a stop engaged since. Ask for it again instead."""
        message = update.message
        if message is None or not (message.text or "").startswith("/"):
            return
        age_s = (self.clock.now_ms() - int(message.date.timestamp() * 1000)) / 1000
        if age_s <= self.max_command_age_seconds:
            return
        command = (message.text or "").split()[0][:32]
        await self._audit(update, "telegram.stale", {"command": command, "age_s": int(age_s)})
        try:
            await message.reply_text(
                f"Ignored {command}: it was sent {int(age_s)} s ago, while the bot was "
                "unreachable. Send it again if you still want it."
            )
        except TelegramError as exc:
            log.warning("could not answer a stale command: %s", exc)
        raise ApplicationHandlerStop

    async def _audit(self, update: Update, action: str, detail: dict[str, Any]) -> None:
        """Best effort: in a cluster the kill switch must work while Redis is down (the
        Emergency resource is the path), so a failed audit write is logged, not fatal."""
        chat = update.effective_chat
        entry = AuditEntry(
            ts_ms=self.clock.now_ms(),
            actor=actor_of(update),
            action=action,
            detail={"chat_id": chat.id if chat else None, **detail},
        )
        try:
            await write_audit(self.redis, self.keys, entry)
        except Exception as exc:
            log.warning("audit write failed (%s): %s by %s %s", type(exc).__name__, action,
                        entry.actor, detail)

    async def _command(self, update: Update, name: str) -> None:
        log.info("telegram /%s by %s", name, actor_of(update))
        await self._audit(update, "telegram.command", {"command": name})

    async def _reply(self, update: Update, text: str, **kw: Any) -> Any:
        message = update.effective_message
        if message is None:
            return None
        parts = pages(text)  # Telegram refuses a message over 4,096 characters
        for page in parts[:-1]:
            await message.reply_text(page)
        return await message.reply_text(parts[-1], **kw)

    # -- read-only commands -------------------------------------------------------
    async def cmd_help(self, update: Update, context: Ctx) -> None:
        await self._command(update, "help")
        await self._reply(update, HELP)

    async def cmd_status(self, update: Update, context: Ctx) -> None:
        await self._command(update, "status")
        emergency = await self.desired.get_emergency()
        ov = await read_overview(self.redis, self.keys)
        lines = [emergency_line(emergency)]
        if emergency.get("action", EmergencyAction.NONE) != EmergencyAction.NONE:
            since = int(emergency.get("since_ms") or 0)
            confirmed = [
                f"{runner} ({cancelled_count(ack)} orders cancelled)"
                for runner, ack in sorted(ov.acks.items())
                if ack.get("action") == emergency["action"] and int(ack.get("ts_ms") or 0) >= since
            ]
            lines.append(
                "Halt confirmed by: " + (", ".join(confirmed) if confirmed else "no runner yet")
            )
        if not ov.summaries:
            lines.append("No runners have reported yet.")
        for name, s in sorted(ov.summaries.items()):
            lines.append(runner_line(name, s, len(ov.positions.get(name, [])),
                                     self.clock.now_ms()))
            if (twin := twin_line(s)) is not None:
                lines.append(twin)
        positions = position_lines(ov.positions)
        lines.append(f"Positions: {len(positions)}" if positions else "Positions: none")
        lines.extend(positions)
        if ov.alerts_pending is not None:
            lines.append(f"Notifier: up; alerts waiting to be sent: {ov.alerts_pending}")
        await self._reply(update, "\n".join(lines))

    async def cmd_positions(self, update: Update, context: Ctx) -> None:
        await self._command(update, "positions")
        ov = await read_overview(self.redis, self.keys)
        lines = position_lines(ov.positions)
        await self._reply(update, "\n".join(lines) if lines else "No open positions.")

    async def cmd_pnl(self, update: Update, context: Ctx) -> None:
        await self._command(update, "pnl")
        ov = await read_overview(self.redis, self.keys)
        lines = pnl_lines(ov.summaries)
        await self._reply(update, "\n".join(lines) if lines else "No runners have reported yet.")

    # -- emergency commands -------------------------------------------------------
    async def _set_emergency(self, update: Update, action: str, reason: str) -> dict[str, Any]:
        return await self.desired.set_emergency(action, actor_of(update), reason)

    async def cmd_stop(self, update: Update, context: Ctx) -> None:
        await self._command(update, "stop")
        state = await self._set_emergency(update, EmergencyAction.STOP, "Telegram /stop")
        await self._reply(
            update,
            f"🛑 Emergency STOP engaged by {state['by']} at {when(state['since_ms'])}.\n"
            "Runners halt and cancel pending orders; positions stay open.\n"
            "/resume to trade again, /status to see which runners confirmed.",
        )
        self._follow_acks(context, EmergencyAction.STOP, int(state["since_ms"]))

    async def cmd_resume(self, update: Update, context: Ctx) -> None:
        await self._command(update, "resume")
        before = await self.desired.get_emergency()
        state = await self._set_emergency(update, EmergencyAction.NONE, "Telegram /resume")
        was = before.get("action", EmergencyAction.NONE)
        note = "" if was != EmergencyAction.NONE else " (no emergency was engaged)"
        await self._reply(
            update, f"▶️ Trading resumed by {state['by']} at {when(state['since_ms'])}{note}."
        )

    async def cmd_closeall(self, update: Update, context: Ctx) -> None:
        await self._command(update, "closeall")
        user = update.effective_user
        chat = update.effective_chat
        if user is None or chat is None:
            return
        now = self.clock.now_ms()
        for nonce, p in list(self._pending.items()):
            if p.expires_ms <= now:
                del self._pending[nonce]
        nonce = secrets.token_hex(8)
        self._pending[nonce] = PendingConfirm(user.id, chat.id, now + self.confirm_ms)
        try:
            ov = await read_overview(self.redis, self.keys)
            what = f"ALL {sum(len(v) for v in ov.positions.values())} open position(s)"
        except Exception as exc:  # Redis down: the Emergency resource still works
            log.warning("could not count positions for /closeall: %s", type(exc).__name__)
            what = "ALL open positions"
        keyboard = InlineKeyboardMarkup(
            [[
                InlineKeyboardButton("Confirm: close all", callback_data=f"closeall:yes:{nonce}"),
                InlineKeyboardButton("Cancel", callback_data=f"closeall:no:{nonce}"),
            ]]
        )
        await self._reply(
            update,
            f"⚠️ Close {what} at market and halt trading?\n"
            f"Only you can confirm; this expires in {self.confirm_ms // 1000} s.",
            reply_markup=keyboard,
        )

    async def on_closeall_button(self, update: Update, context: Ctx) -> None:
        query = update.callback_query
        user = update.effective_user
        if query is None or user is None:
            return
        match = CLOSEALL_DATA.match(query.data or "")
        if match is None:
            await query.answer()
            return
        choice, nonce = match.groups()
        pending = self._pending.get(nonce)
        if pending is not None and pending.user_id != user.id:
            await self._audit(update, "telegram.closeall.refused", {"reason": "not the requester"})
            await query.answer("Only the user who sent /closeall can answer.", show_alert=True)
            return
        self._pending.pop(nonce, None)
        if pending is None or pending.expires_ms <= self.clock.now_ms():
            await self._audit(update, "telegram.closeall.expired", {})
            await query.answer("This confirmation expired. Send /closeall again.")
            await query.edit_message_text("Expired — nothing was changed. Send /closeall again.")
            return
        if choice == "no":
            await self._audit(update, "telegram.closeall.cancelled", {})
            await query.answer("Cancelled")
            await query.edit_message_text("Cancelled — nothing was changed.")
            return
        await self._audit(update, "telegram.closeall.confirmed", {})
        state = await self._set_emergency(
            update, EmergencyAction.CLOSE_ALL, "Telegram /closeall (confirmed)"
        )
        await query.answer("Closing all positions")
        await query.edit_message_text(
            f"🚨 CLOSE-ALL engaged by {state['by']} at {when(state['since_ms'])}.\n"
            "Runners halt, cancel pending orders and sell every position at market.\n"
            "/status to follow; /resume to trade again afterwards."
        )
        self._follow_acks(context, EmergencyAction.CLOSE_ALL, int(state["since_ms"]))

    def _follow_acks(self, context: Ctx, action: str, since_ms: int) -> None:
        """Tell the chat when the runners confirmed the halt (or that some did not)."""
        if self.ack_wait_seconds <= 0:
            return
        # our own task, not Application.create_task: Application.stop() would wait for
        # it (up to ack_wait_seconds) and delay a SIGTERM shutdown
        task = asyncio.create_task(
            self._report_acks_safely(context, action, since_ms), name=f"acks-{action}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def aclose(self) -> None:
        """End ack follow-ups still waiting (shutdown). The flag ends their loop even if
        a cancellation is swallowed inside a client library; the wait is bounded."""
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=2.0)

    async def _report_acks_safely(self, context: Ctx, action: str, since_ms: int) -> None:
        try:
            await self._report_acks(context, action, since_ms)
        except Exception as exc:  # a follow-up must never take the bot down, nor vanish
            log.error("runner ack follow-up failed: %s: %s", type(exc).__name__, exc)

    async def _report_acks(self, context: Ctx, action: str, since_ms: int) -> None:
        deadline = self.clock.now_ms() + int(self.ack_wait_seconds * 1000)
        expected: set[str] = set()
        confirmed: dict[str, dict[str, Any]] = {}
        while not self._closing:
            try:
                expected = await strategy_names(self.redis, self.keys)
                ov = await read_overview(self.redis, self.keys)
            except Exception as exc:
                log.warning("reading runner acks failed: %s", type(exc).__name__)
                return
            confirmed = {
                runner: ack for runner, ack in ov.acks.items()
                if ack.get("action") == action and int(ack.get("ts_ms") or 0) >= since_ms
            }
            current = await self.desired.get_emergency()
            if current.get("action") != action:
                return  # superseded (e.g. /resume): that command reports for itself
            if expected and expected <= set(confirmed):
                break
            if self.clock.now_ms() >= deadline:
                break
            await self.clock.sleep(0.25)
        if self._closing or (not expected and not confirmed):
            return
        cancelled = sum(cancelled_count(a) for a in confirmed.values())
        missing = sorted(expected - set(confirmed))
        text = f"✅ {len(confirmed)} runner(s) confirmed {action} ({cancelled} orders cancelled)."
        if missing:
            text += f"\nNot confirmed after {int(self.ack_wait_seconds)} s: {', '.join(missing)}"
        try:
            for page in pages(text):
                await context.bot.send_message(self.target.chat_id, page)
        except TelegramError as exc:
            log.warning("could not report runner acks: %s", exc)

    async def _on_error(self, update: object, context: Ctx) -> None:
        err = context.error
        log.error("command failed: %s: %s", type(err).__name__, err)
        if not (isinstance(update, Update) and self.allowed(update) and update.effective_message):
            return
        text = f"❌ That failed ({type(err).__name__})."
        if _explainable(err):
            text = f"❌ That failed: {err}"
        text += (
            "\nCheck /status. Kill switch without this bot: the dashboard, or\n"
            "kubectl patch emergency default --type merge -p "
            "'{\"spec\":{\"action\":\"stop\"}}'"
        )
        try:
            await update.effective_message.reply_text(fit(text))
        except TelegramError:
            pass


def _explainable(err: BaseException | None) -> bool:
    """Errors whose message is written for the operator (names the field/rule, no secrets)."""
    if isinstance(err, DesiredStateError | NotFoundError):
        return True
    try:
        from kubetrade.state.desired_k8s import DesiredStateUnavailable
    except ImportError:  # the kubernetes client is optional for local use
        return False
    return isinstance(err, DesiredStateUnavailable)
