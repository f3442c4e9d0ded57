"""Configuration of ``kubetrade notify`` from the environment (pydantic-settings).

The token is a ``SecretStr`` so it never shows in a repr, a log line or an error
message; only :func:`kubetrade.notify.redact.install_secret_redaction` and the HTTP
client ever see its value.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_API_ROOT = "https://api.telegram.org"


class NotifySettings(BaseSettings):
    """Environment variables of the notifier (names are the field names in upper case)."""

    # hide_input_in_errors: a malformed token must not be echoed by a ValidationError
    model_config = SettingsConfigDict(
        extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    telegram_bot_token: SecretStr = Field(description="Bot token from @BotFather.")
    telegram_chat_id: int = Field(
        description="The one chat (private chat or group) that receives alerts and may "
        "send commands."
    )
    telegram_allowed_user_ids: Annotated[list[int], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated Telegram user ids allowed to command in that chat; "
        "empty = every member of the chat.",
    )
    telegram_api_base_url: str = Field(
        default=DEFAULT_API_ROOT,
        description="Root of the Bot API server (a self-hosted Bot API or a test fake); "
        "'/bot<token>/<method>' is appended.",
    )
    kubetrade_namespace: str | None = Field(
        default=None,
        description="Set in a cluster: commands change the Emergency resource there.",
    )
    telegram_confirm_seconds: int = Field(
        default=60, ge=5, le=3600, description="How long a /closeall confirmation stays valid."
    )
    telegram_alert_linger_seconds: float = Field(
        default=1.0,
        ge=0,
        le=30,
        description="After the first alert of a burst, wait this long so alerts that fire "
        "together go out as one message.",
    )

    @field_validator("telegram_allowed_user_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",")]
            try:
                return [int(p) for p in parts if p]
            except ValueError:
                raise ValueError(
                    "TELEGRAM_ALLOWED_USER_IDS: must be comma-separated integer user ids"
                ) from None
        return value

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_shape(cls, value: SecretStr) -> SecretStr:
        token = value.get_secret_value()
        if ":" not in token or any(c.isspace() for c in token):
            # the value itself is never echoed back
            raise ValueError("TELEGRAM_BOT_TOKEN: expected '<bot id>:<secret>' without spaces")
        return value

    @field_validator("telegram_api_base_url")
    @classmethod
    def _root(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("TELEGRAM_API_BASE_URL: must start with http:// or https://")
        return value.rstrip("/")

    @property
    def bot_base_url(self) -> str:
        return f"{self.telegram_api_base_url}/bot"

    @property
    def file_base_url(self) -> str:
        return f"{self.telegram_api_base_url}/file/bot"


def telegram_configured(env: dict[str, str]) -> bool:
    """Whether the environment asks for the notifier (``kubetrade local`` starts it then)."""
    return bool(env.get("TELEGRAM_BOT_TOKEN")) and bool(env.get("TELEGRAM_CHAT_ID"))
