"""Structured JSON logs on stdout, with secrets redacted in the one processor chain.

Every log line (ours through structlog, and the standard-library loggers of uvicorn,
ccxt, kopf, httpx) passes :class:`Redactor` last before rendering, so a secret that
reaches a log call by accident (an exception message with a signed URL, a settings
dump, a header dict) is masked instead of written out.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from typing import Any, TextIO

import structlog

MASK = "***"

# Field names whose values are secrets whatever they contain.
_SECRET_NAME = re.compile(
    r"(pass(word)?|secret|token|api[_-]?key|apikey|private[_-]?key|signature|"
    r"authorization|credential|cookie|x-mbx-apikey)",
    re.IGNORECASE,
)
# Secrets embedded in strings: query/header fragments and Telegram bot tokens.
_INLINE = [
    re.compile(
        r"(?i)((?:api[_-]?key|apikey|secret(?:[_-]?key)?|signature|token|password|"
        r"x-mbx-apikey)[\"']?\s*[=:]\s*[\"']?)([^&\s\"',;}]+)"
    ),
    re.compile(r"(?i)(bearer\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(r"()(\b\d{6,12}:[A-Za-z0-9_-]{30,}\b)"),  # Telegram bot token
    re.compile(r"(/bot)([^/\s]+)"),  # Telegram API URLs carry the token in the path
]
# Environment variables whose values are registered as known secrets at configure time.
SECRET_ENV = (
    "BINANCE_API_KEY",
    "BINANCE_SECRET_KEY",
    "TELEGRAM_BOT_TOKEN",
    "DASHBOARD_PASSWORD",
    "JWT_SECRET",
    "KUBETRADE_JWT_SECRET",
)


class Redactor:
    """structlog processor masking secrets by field name, by known value, and by shape."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        for s in secrets:
            self.add_secret(s)

    def add_secret(self, value: str | None) -> None:
        # Very short values would mask ordinary words; real keys are long.
        if value and len(value) >= 6:
            self._secrets.add(value)

    def redact_text(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _INLINE:
            text = pattern.sub(lambda m: m.group(1) + MASK, text)
        return text

    def redact(self, value: Any, depth: int = 0) -> Any:
        if depth > 8:
            return value
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, Mapping):
            return {
                k: (MASK if isinstance(k, str) and _SECRET_NAME.search(k) and v else
                    self.redact(v, depth + 1))
                for k, v in value.items()
            }
        if isinstance(value, list | tuple):
            return type(value)(self.redact(v, depth + 1) for v in value)
        if isinstance(value, BaseException):
            return self.redact_text(f"{type(value).__name__}: {value}")
        return value

    def __call__(
        self, _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key in list(event_dict):
            value = event_dict[key]
            if key not in ("event",) and _SECRET_NAME.search(key) and value:
                event_dict[key] = MASK
            else:
                event_dict[key] = self.redact(value)
        return event_dict


_redactor = Redactor()


def redactor() -> Redactor:
    """The process-wide redactor (register extra secrets with ``add_secret``)."""
    return _redactor


def configure_logging(level: str | None = None, stream: TextIO | None = None) -> Redactor:
    """JSON logs to ``stream`` (stdout) for structlog and stdlib loggers alike."""
    for name in SECRET_ENV:
        _redactor.add_secret(os.environ.get(name))
    lvl = getattr(logging, (level or os.environ.get("LOG_LEVEL", "INFO")).upper(), logging.INFO)
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    structlog.configure(
        processors=[*shared, _redactor, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stdout),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _redactor,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=[
                *shared,
                structlog.stdlib.add_logger_name,
                structlog.stdlib.ExtraAdder(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    # uvicorn's own logging config gives its loggers plain-text handlers that do not
    # propagate, which would bypass the redaction above (and the JSON format): route
    # them through the root handler like every other library.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi"):
        server_logger = logging.getLogger(name)
        server_logger.handlers.clear()
        server_logger.propagate = True
    for noisy in ("ccxt", "urllib3", "httpx", "httpcore", "asyncio", "kubernetes"):
        logging.getLogger(noisy).setLevel(max(lvl, logging.WARNING))
    return _redactor


def get_logger(name: str = "kubetrade", **context: Any) -> Any:
    """A lazy logger: safe at import time, it renders with whatever configuration is
    current when it logs."""
    return structlog.wrap_logger(None, logger_factory_args=(name,), component=name, **context)
