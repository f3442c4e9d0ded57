"""Dashboard authentication: password login, JWT access/refresh tokens, revocation.

- Tokens are HS256 JWTs (python-jose), decoded with the algorithm always named, so a
  token claiming ``alg: none`` or another algorithm is refused; ``exp``, ``iat`` and
  ``jti`` are required. Expiry is checked against the injected clock.
- Access tokens are short-lived. Refresh tokens rotate: each refresh returns a new
  pair and the old refresh token dies. A refresh token belongs to a *family* (one
  login); Redis remembers the family's one live refresh ``jti``. Presenting an older
  one means it was stolen or replayed, so the whole family is revoked (RFC 6819
  5.2.2.3 / OAuth 2.0 Security BCP 4.14).
- Revocation lives in Redis (``keys.revoked_token``) with a TTL of the token's
  remaining life, so the list cleans itself.
- The password is kept only as an scrypt hash and compared in constant time; failed
  logins per client are counted in Redis and the 6th attempt within the window is
  refused with 429.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

from jose import JWTError, jwt

from kubetrade.domain.clock import Clock
from kubetrade.domain.emergency import REDIS_WAIT_S
from kubetrade.state.client import RedisClient, RedisError
from kubetrade.state.keys import Keys
from kubetrade.state.sessions import LoginCounter, Rotation, SessionStore

log = logging.getLogger("kubetrade.api.auth")

ALGORITHM = "HS256"
ACCESS = "access"
REFRESH = "refresh"

_SCRYPT_N, _SCRYPT_R, _SCRYPT_P = 2**14, 8, 1


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (base64); what DASHBOARD_PASSWORD_HASH holds."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${_SCRYPT_N}${_SCRYPT_R}${_SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of ``password`` against :func:`hash_password` output."""
    try:
        scheme, n, r, p, salt_b64, hash_b64 = encoded.split("$")
        if scheme != "scrypt":
            return False
        salt, expected = base64.b64decode(salt_b64), base64.b64decode(hash_b64)
        digest = hashlib.scrypt(
            password.encode(), salt=salt, n=int(n), r=int(r), p=int(p), dklen=len(expected)
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(digest, expected)


class AuthError(Exception):
    """Authentication failed; the message is safe to show (never echoes the token)."""


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int


@dataclass(frozen=True)
class Principal:
    """Who is calling: ``username`` and the token claims (none when auth is off)."""

    username: str
    claims: dict[str, Any] | None = None

    @property
    def actor(self) -> str:
        """The audit log's actor for this caller."""
        return f"api:{self.username}"


class TokenService:
    def __init__(
        self,
        redis: RedisClient,
        keys: Keys,
        clock: Clock,
        secret: str,
        access_ttl: int,
        refresh_ttl: int,
    ) -> None:
        self._sessions = SessionStore(redis, keys)
        self._clock = clock
        self._secret = secret
        self.access_ttl = access_ttl
        self.refresh_ttl = refresh_ttl

    def _now(self) -> int:
        return self._clock.now_ms() // 1000

    def _encode(self, sub: str, typ: str, family: str, ttl: int) -> tuple[str, str]:
        now = self._now()
        jti = uuid.uuid4().hex
        claims = {"sub": sub, "typ": typ, "fam": family, "iat": now, "exp": now + ttl, "jti": jti}
        return jwt.encode(claims, self._secret, algorithm=ALGORITHM), jti

    async def issue(self, username: str) -> TokenPair:
        """A fresh pair starting a new refresh family (a login)."""
        family = uuid.uuid4().hex
        access, _ = self._encode(username, ACCESS, family, self.access_ttl)
        refresh, rjti = self._encode(username, REFRESH, family, self.refresh_ttl)
        await self._sessions.start_family(family, rjti, self.refresh_ttl)
        return TokenPair(access, refresh, self.access_ttl)

    def _decode(self, token: str, typ: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
            if header.get("alg") != ALGORITHM:
                raise AuthError("invalid token")
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[ALGORITHM],
                options={
                    # expiry is checked below against the injected clock
                    "verify_exp": False,
                    "require_exp": True,
                    "require_iat": True,
                    "require_jti": True,
                    "require_sub": True,
                    "verify_aud": False,
                },
            )
        except JWTError:
            raise AuthError("invalid token") from None
        exp, iat = claims.get("exp"), claims.get("iat")
        if not isinstance(exp, int) or not isinstance(iat, int):
            raise AuthError("invalid token")
        if claims.get("typ") != typ or not isinstance(claims.get("fam"), str):
            raise AuthError("invalid token")
        if exp <= self._now():
            raise AuthError("token expired")
        if iat > self._now() + 60:
            raise AuthError("invalid token")
        return claims

    async def _revoked(self, claims: dict[str, Any]) -> bool:
        return await self._sessions.any_revoked(str(claims["jti"]), str(claims["fam"]))

    async def verify_access(self, token: str, *, kill_switch: bool = False) -> Principal:
        """A valid, unexpired, unrevoked access token's caller.

        ``kill_switch``: the revocation list lives in Redis; when Redis is down, a
        signed, unexpired token is still accepted to *stop* trading (the Emergency
        resource carries the stop), since refusing would leave the kill switch dead
        with the store. Every other use needs the revocation check."""
        claims = self._decode(token, ACCESS)
        try:
            # the kill switch waits on a Redis that hangs only so long
            async with asyncio.timeout(REDIS_WAIT_S if kill_switch else None):
                revoked = await self._revoked(claims)
        except (RedisError, TimeoutError):
            if not kill_switch:
                raise
            log.warning(
                "revocation list unreachable (Redis down): kill switch accepted on "
                "a valid access token of %s",
                claims["sub"],
            )
            return Principal(str(claims["sub"]), claims)
        if revoked:
            raise AuthError("token revoked")
        return Principal(str(claims["sub"]), claims)

    async def refresh(self, token: str) -> tuple[TokenPair, str]:
        """Rotate: the old refresh token dies, a new pair is returned with the username.

        Reuse of an already rotated refresh token revokes its whole family."""
        claims = self._decode(token, REFRESH)
        if await self._revoked(claims):
            raise AuthError("token revoked")
        family, sub = str(claims["fam"]), str(claims["sub"])
        access, _ = self._encode(sub, ACCESS, family, self.access_ttl)
        refresh, rjti = self._encode(sub, REFRESH, family, self.refresh_ttl)
        result = await self._sessions.rotate(family, claims["jti"], rjti, self.refresh_ttl)
        if result is Rotation.ROTATED:
            return TokenPair(access, refresh, self.access_ttl), sub
        if result is Rotation.REUSED:
            await self.revoke_family(family)
            log.warning("refresh token reuse detected; token family revoked")
            raise AuthError("refresh token reuse detected; session revoked")
        raise AuthError("session expired")

    async def revoke(self, claims: dict[str, Any]) -> None:
        """Revoke one token until it would have expired anyway."""
        ttl = max(1, int(claims["exp"]) - self._now())
        await self._sessions.revoke_token(str(claims["jti"]), ttl)

    async def revoke_family(self, family: str) -> None:
        """Revoke every token of one login (access and refresh)."""
        await self._sessions.revoke_family(family, self.refresh_ttl)


class LoginLimiter:
    """Login attempts per client in a fixed window, reset by a success; once
    ``max_failures`` have failed, the next attempt in the window gets 429."""

    def __init__(
        self, redis: RedisClient, keys: Keys, max_failures: int, window_seconds: int
    ) -> None:
        self._counter = LoginCounter(redis, keys)
        self.max_failures = max_failures
        self.window = window_seconds

    async def attempt(self, client: str) -> int | None:
        """Count this attempt *before* the password is checked, atomically, and return
        the seconds to wait when it is over the limit (else None).

        Counting first is what makes the limit hold under parallel requests: a
        check-then-count-on-failure limiter lets every guess that arrives before the
        first failure is recorded through. A success resets the count."""
        count, ttl = await self._counter.count(client, self.window)
        if count > self.max_failures:
            return max(1, ttl) if ttl > 0 else self.window
        return None

    async def succeeded(self, client: str) -> None:
        await self._counter.reset(client)


class PasswordCheck:
    """The configured credentials, hashed once at start-up."""

    def __init__(self, username: str, password_hash: str) -> None:
        self._username = username
        self._hash = password_hash

    def check(self, username: str, password: str) -> bool:
        # Both comparisons always run, so timing does not reveal which one failed.
        user_ok = hmac.compare_digest(username.encode(), self._username.encode())
        pw_ok = verify_password(password, self._hash)
        return user_ok and pw_ok
