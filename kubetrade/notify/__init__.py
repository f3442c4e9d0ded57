"""Telegram bot and the alert dispatcher."""
