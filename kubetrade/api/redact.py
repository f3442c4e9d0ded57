"""Keep access tokens out of the server's logs.

uvicorn logs request paths, and ``/api/ws?token=...`` carries the access token in its
query string; :class:`RedactTokens` rewrites ``token=<value>`` to ``token=[redacted]``.
"""

import logging
import re

_TOKEN_IN_URL = re.compile(r"(token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Server logs print request paths; ``/api/ws?token=...`` must not put the access
    token in them. Rewrites ``token=<value>`` to ``token=[redacted]``."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                _TOKEN_IN_URL.sub(r"\1[redacted]", a) if isinstance(a, str) else a
                for a in record.args
            )
        if isinstance(record.msg, str) and "token=" in record.msg:
            record.msg = _TOKEN_IN_URL.sub(r"\1[redacted]", record.msg)
        return True


def install_log_redaction() -> None:
    """Add one :class:`RedactTokens` to uvicorn's access and error loggers (idempotent)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())
