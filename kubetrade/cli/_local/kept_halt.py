"""A stop or close-all that ``kubetrade local`` accepted while Redis could not be
written, kept in a file beside the embedded Redis' (``<data-dir>/emergency-kept.json``)
until Redis has it: a process stopped or crashed before Redis answered again must not
come back trading. Written atomically (temporary file, fsync, rename) before the API
answers; removed once Redis holds the halt."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from kubetrade.logs import get_logger

log = get_logger("kubetrade.local")

FILE_NAME = "emergency-kept.json"


class KeptHaltFile:
    """The kept halt's file: ``{"action", "since_ms", "by", "reason"}`` as JSON."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / FILE_NAME

    def save(self, state: dict[str, Any]) -> None:
        """Write ``state`` durably (OSError when the disk refuses: logged, the halt in
        memory and the background writer still stand)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            json.dump(state, fh)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(self.path)

    def load(self) -> dict[str, Any] | None:
        """The kept halt, or None (no file; an unreadable one is logged and ignored)."""
        try:
            state = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("local.emergency_kept_unreadable", file=str(self.path), error=str(exc))
            return None
        ok = isinstance(state, dict) and {"action", "since_ms", "by", "reason"} <= set(state)
        return state if ok else None

    def clear(self) -> None:
        """Remove the file (Redis holds the halt now)."""
        self.path.unlink(missing_ok=True)


__all__ = ["FILE_NAME", "KeptHaltFile"]
