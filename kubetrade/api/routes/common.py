"""What several routers share: documented error responses and parameter patterns."""

from typing import Any

from fastapi import HTTPException

from kubetrade.api import schemas as s
from kubetrade.state.reader import STREAM_ID, valid_cursor

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
STREAM_PATTERN = STREAM_ID.pattern
SYMBOL_PATTERN = r"^[A-Z0-9]{1,20}/[A-Z0-9]{1,20}$"
MAX_TS = 2**53

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": s.ErrorOut, "description": "Missing, invalid, expired or revoked token."},
}
BAD: dict[int | str, dict[str, Any]] = {
    422: {"model": s.ErrorOut, "description": "Invalid request; the message names the field."},
    503: {"model": s.ErrorOut, "description": "Redis or the Kubernetes API is unreachable."},
}


def check_cursor(cursor: str | None) -> None:
    """422 when ``cursor`` is not a Redis stream id whose parts fit in 64 bits."""
    if cursor is not None and not valid_cursor(cursor):
        raise HTTPException(422, "cursor: not a stream id (ms-seq, each at most 2^64-1)")
