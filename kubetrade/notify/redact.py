"""Keep the bot token out of every log line.

The Bot API puts the token in the URL path, and both python-telegram-bot (debug
"Set Bot API URL") and httpx (info "HTTP Request: POST https://.../bot<token>/...")
log URLs. Filters on one logger do not see records of its children, and handlers
are added by whoever configures logging, so the redaction happens where every
record is born: in the log record factory. It renders the message once, replaces
each registered secret, and renders exception text the same way.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import Any

REDACTED = "<redacted>"
_lock = threading.Lock()
_secrets: set[str] = set()
_installed = False
_NOISY = ("httpx", "httpcore")


def redact(text: str) -> str:
    for secret in _secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def install_secret_redaction(*secrets: str) -> None:
    """Redact ``secrets`` from every log record created from now on in this process.

    Also quiets httpx/httpcore to WARNING: one line per long poll is noise, and fewer
    lines carrying URLs means fewer places for a token to leak if a new one appears.
    """
    global _installed
    with _lock:
        for secret in secrets:
            if secret:
                _secrets.add(secret)
                # the numeric bot id before ':' is public; the part after it is the secret
                if ":" in secret:
                    _secrets.add(secret.split(":", 1)[1])
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            if not _secrets:
                return record
            try:
                message = record.getMessage()
            except Exception:  # a bad format string must not break logging
                message = str(record.msg)
            record.msg = redact(message)
            record.args = None
            if record.exc_info and record.exc_info[1] is not None:
                record.exc_text = redact("".join(traceback.format_exception(*record.exc_info)))
                record.exc_text = record.exc_text.rstrip("\n")
                record.exc_info = None  # formatters print exc_text; the raw object could leak
            if record.stack_info:
                record.stack_info = redact(record.stack_info)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
