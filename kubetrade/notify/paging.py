"""Every outgoing chat message fits Telegram's limit: the one place long text is cut.

Telegram refuses a text message over 4,096 characters ("Message is too long"), so a
reply listing many things (60 positions) failed whole. :func:`pages` splits a text at
line ends into messages that each fit, numbered "(1/3)"; past ``MAX_PAGES`` messages
the rest is summed up as "… and N more lines" with where to see them, so one command
cannot flood the chat (Telegram allows about 20 messages a minute to a group).

Lengths are counted in UTF-16 code units, as Telegram counts them (an emoji is two),
which is never less than Python's ``len``; a single line longer than a message is cut
into pieces, never across a surrogate pair.
"""

from __future__ import annotations

MAX_MESSAGE = 4096  # Telegram's limit for one text message (UTF-16 code units)
#: Messages one reply may take; the rest is summarised (see the dashboard).
MAX_PAGES = 5
#: Room kept in each page for its "(i/n)" marker and the closing summary line.
_MARKER_ROOM = 16
_MORE_ROOM = 120
MORE_HINT = "see the dashboard or /api for the full list"


def units(text: str) -> int:
    """``text``'s length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def _cut_line(line: str, limit: int) -> list[str]:
    """``line`` in pieces of at most ``limit`` UTF-16 units each."""
    pieces: list[str] = []
    current: list[str] = []
    size = 0
    for ch in line:
        width = 2 if ord(ch) > 0xFFFF else 1
        if size + width > limit:
            pieces.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += width
    pieces.append("".join(current))
    return pieces


def _chunks(lines: list[str], limit: int) -> list[list[str]]:
    """``lines`` packed in order into groups whose joined text fits ``limit``."""
    groups: list[list[str]] = [[]]
    size = 0
    for line in lines:
        for piece in _cut_line(line, limit) if units(line) > limit else [line]:
            width = units(piece) + (1 if groups[-1] else 0)
            if groups[-1] and size + width > limit:
                groups.append([])
                size, width = 0, units(piece)
            groups[-1].append(piece)
            size += width
    return groups


def pages(text: str, limit: int = MAX_MESSAGE, max_pages: int = MAX_PAGES) -> list[str]:
    """``text`` as messages of at most ``limit`` units each (one when it fits).

    Split at line ends; each page of several is marked "(i/n)"; beyond ``max_pages`` the
    last page ends with "… and N more lines (see the dashboard …)". Never empty.
    """
    if units(text) <= limit:
        return [text]
    lines = text.split("\n")
    groups = _chunks(lines, limit - _MARKER_ROOM)
    if len(groups) > max_pages:
        groups = _chunks(lines, limit - _MARKER_ROOM - _MORE_ROOM)
        kept, dropped = groups[:max_pages], groups[max_pages:]
        hidden = sum(len(g) for g in dropped)
        kept[-1] = [*kept[-1], f"… and {hidden} more lines ({MORE_HINT})"]
        groups = kept
    n = len(groups)
    return [f"({i}/{n})\n" + "\n".join(g) for i, g in enumerate(groups, start=1)]


def fit(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` as one message: clipped with "…" when longer than ``limit`` units
    (for texts that must stay one message, e.g. an alert tied to its stream id)."""
    if units(text) <= limit:
        return text
    return _cut_line(text, limit - 1)[0] + "…"
