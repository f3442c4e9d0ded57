"""Configuration of ``kubetrade api`` from the environment (pydantic-settings).

Secrets are ``SecretStr`` so they never print in logs or reprs; ``masked_runtime``
is the only way configuration leaves the process, and it shows whether a secret is
set, never its value.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kubetrade.domain.passwords import weak_password_reason

MASK = "********"


class ApiSettings(BaseSettings):
    """Environment variables of the API (names are the field names in upper case)."""

    # hide_input_in_errors: a refused secret (JWT_SECRET too short) is never echoed
    model_config = SettingsConfigDict(
        extra="ignore", case_sensitive=False, hide_input_in_errors=True
    )

    dashboard_password: SecretStr | None = Field(
        default=None,
        description="Dashboard/API password. Set: every data endpoint needs a token. "
        "Unset: no authentication and the API binds to loopback only.",
    )
    dashboard_password_hash: SecretStr | None = Field(
        default=None,
        description="Alternative to DASHBOARD_PASSWORD: a hash from "
        "kubetrade.api.auth.hash_password (scrypt$...), so the plain password need not be "
        "stored.",
    )
    dashboard_username: str = Field(default="admin", min_length=1, max_length=64)
    jwt_secret: SecretStr | None = Field(
        default=None,
        description="HS256 signing key (>= 32 characters). Unset: a random key per process "
        "(tokens die with the process).",
    )
    access_token_ttl_seconds: int = Field(default=900, ge=30, le=86400)
    refresh_token_ttl_seconds: int = Field(default=7 * 86400, ge=60, le=90 * 86400)
    login_max_failures: int = Field(default=5, ge=1, le=1000)
    login_window_seconds: int = Field(default=60, ge=1, le=86400)
    cors_origins: list[str] = Field(
        default_factory=list,
        description="Exact origins (scheme://host[:port]) allowed to call the API from a "
        "browser; no wildcards.",
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    ws_queue_size: int = Field(default=256, ge=4, le=100_000)
    ws_auth_timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    risk_policy: str = Field(default="default", description="RiskPolicy edited by /api/settings.")
    trading_mode: Literal["paper", "live"] = Field(
        default="paper",
        description="The runbook's TRADING_MODE (paper or live), checked and not used: "
        "each Strategy's spec.mode decides, and GET /api/settings reports the modes the "
        "strategies have. kubetrade local warns that it trades paper only when it is live.",
    )
    kubetrade_namespace: str | None = None
    binance_api_key: SecretStr | None = None
    binance_secret_key: SecretStr | None = None
    binance_testnet: bool = True
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None

    @field_validator(
        "dashboard_password",
        "dashboard_password_hash",
        "jwt_secret",
        "binance_api_key",
        "binance_secret_key",
        "telegram_bot_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        # `DASHBOARD_PASSWORD=` in an env file means "not set", not "the empty password".
        return None if v == "" else v

    @field_validator("trading_mode", mode="before")
    @classmethod
    def _mode_any_case(cls, v: object) -> object:
        # the runbook writes `paper`; `LIVE` or `Paper` mean the same
        return v.strip().lower() if isinstance(v, str) else v

    @field_validator("jwt_secret")
    @classmethod
    def _secret_long_enough(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and len(v.get_secret_value()) < 32:
            raise ValueError("JWT_SECRET must be at least 32 characters")
        return v

    @field_validator("cors_origins")
    @classmethod
    def _exact_origins(cls, v: list[str]) -> list[str]:
        for origin in v:
            if "*" in origin or not origin.startswith(("http://", "https://")):
                raise ValueError(
                    f"CORS_ORIGINS: {origin!r} is not an exact origin (scheme://host[:port])"
                )
            if origin.rstrip("/") != origin or origin.count("/") > 2:
                raise ValueError(f"CORS_ORIGINS: {origin!r} must not have a path")
        return v

    @property
    def auth_enabled(self) -> bool:
        return self.dashboard_password is not None or self.dashboard_password_hash is not None

    def weak_password(self) -> str | None:
        """Why DASHBOARD_PASSWORD is easy to guess
        (:func:`kubetrade.domain.passwords.weak_password_reason`), or None: strong,
        given as a hash, or unset. The reason never contains the password."""
        if self.dashboard_password is None:
            return None
        return weak_password_reason(self.dashboard_password.get_secret_value())

    def masked_runtime(self) -> dict[str, Any]:
        """Runtime configuration for ``GET /api/settings``: secrets only as set/unset."""

        def mask(v: SecretStr | None) -> str | None:
            return MASK if v is not None else None

        return {
            "binanceTestnet": self.binance_testnet,
            "binanceApiKey": mask(self.binance_api_key),
            "binanceSecretKey": mask(self.binance_secret_key),
            "telegramBotToken": mask(self.telegram_bot_token),
            "telegramChatId": self.telegram_chat_id,
            "dashboardPassword": mask(self.dashboard_password or self.dashboard_password_hash),
            "jwtSecret": mask(self.jwt_secret),
            "authEnabled": self.auth_enabled,
            "corsOrigins": list(self.cors_origins),
            "accessTokenTtlSeconds": self.access_token_ttl_seconds,
            "namespace": self.kubetrade_namespace,
        }
