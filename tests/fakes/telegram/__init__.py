"""A fake Telegram Bot API server for tests (see server.py)."""

from tests.fakes.telegram.server import FakeTelegram, SentMessage

__all__ = ["FakeTelegram", "SentMessage"]
