"""Tokens that must be refused, login throttling, refresh rotation and reuse detection."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Mapping

from jose import jwt

from kubetrade.domain.clock import ManualClock
from tests.fixtures.api import API_PASSWORD, JWT_SECRET, MakeApi

NOW_MS = int(time.time() * 1000)


def _b64(data: Mapping[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _claims(**over: object) -> dict[str, object]:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": "admin",
        "typ": "access",
        "fam": "f" * 32,
        "iat": now,
        "exp": now + 600,
        "jti": "j" * 32,
    }
    claims.update(over)
    return claims


async def _status(api: object, token: str) -> int:
    r = await api.client.get(  # type: ignore[attr-defined]
        "/api/portfolio", headers={"Authorization": f"Bearer {token}"}
    )
    return int(r.status_code)


async def test_valid_token_works(make_api: MakeApi) -> None:
    api = await make_api()
    assert await _status(api, await api.token()) == 200


async def test_expired_token_is_refused(make_api: MakeApi) -> None:
    clock = ManualClock(NOW_MS)
    api = await make_api(clock=clock)
    token = (await api.login())["access_token"]
    assert await _status(api, token) == 200
    clock.advance(901)
    assert await _status(api, token) == 401


async def test_alg_none_is_refused(make_api: MakeApi) -> None:
    api = await make_api()
    for header in ({"alg": "none", "typ": "JWT"}, {"alg": "None"}, {"alg": "NONE"}):
        token = f"{_b64(header)}.{_b64(_claims())}."
        assert await _status(api, token) == 401


async def test_token_signed_with_other_key_is_refused(make_api: MakeApi) -> None:
    api = await make_api()
    token = jwt.encode(_claims(), "another-key-" + "y" * 40, algorithm="HS256")
    assert await _status(api, token) == 401
    # the right key but another algorithm
    token = jwt.encode(_claims(), JWT_SECRET, algorithm="HS512")
    assert await _status(api, token) == 401
    # the right key and algorithm: accepted (shows the checks above are about key/alg)
    assert await _status(api, jwt.encode(_claims(), JWT_SECRET, algorithm="HS256")) == 200


async def test_tokens_missing_required_claims_are_refused(make_api: MakeApi) -> None:
    api = await make_api()
    for missing in ("exp", "iat", "jti", "sub"):
        claims = _claims()
        del claims[missing]
        assert await _status(api, jwt.encode(claims, JWT_SECRET, algorithm="HS256")) == 401


async def test_refresh_token_is_not_an_access_token(make_api: MakeApi) -> None:
    api = await make_api()
    pair = await api.login()
    assert await _status(api, pair["refresh_token"]) == 401


async def test_revoked_token_is_refused(make_api: MakeApi) -> None:
    api = await make_api()
    pair = await api.login()
    h = {"Authorization": f"Bearer {pair['access_token']}"}
    assert (await api.client.post("/api/auth/logout", headers=h)).status_code == 204
    assert await _status(api, pair["access_token"]) == 401
    assert await api.redis.exists(
        api.keys.revoked_token(jwt.get_unverified_claims(pair["access_token"])["jti"])
    )
    r = await api.client.post("/api/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert r.status_code == 401


async def test_sixth_failed_login_in_a_minute_is_429(make_api: MakeApi) -> None:
    api = await make_api()
    for _ in range(5):
        r = await api.client.post("/api/auth/login", json={"password": "wrong"})
        assert r.status_code == 401
    r = await api.client.post("/api/auth/login", json={"password": "wrong"})
    assert r.status_code == 429
    assert 0 < int(r.headers["retry-after"]) <= 60
    # locked out even with the right password until the window passes
    r = await api.client.post("/api/auth/login", json={"password": API_PASSWORD})
    assert r.status_code == 429
    await api.redis.delete(api.keys.login_failures("127.0.0.1"))
    r = await api.client.post("/api/auth/login", json={"password": API_PASSWORD})
    assert r.status_code == 200
    audit = await api.client.get("/api/audit", params={"action": "auth"}, headers=await api.auth())
    actions = [a["action"] for a in audit.json()["items"]]
    assert actions.count("auth.login_failed") == 5
    assert actions.count("auth.login_throttled") == 2


async def test_parallel_guesses_get_no_more_than_five_tries(make_api: MakeApi) -> None:
    """Guesses sent all at once must not all pass the limiter before any failure is
    counted (check-then-count let 40 parallel guesses through in one window)."""
    api = await make_api()

    async def guess() -> int:
        r = await api.client.post("/api/auth/login", json={"password": "wrong"})
        return int(r.status_code)

    codes = await asyncio.gather(*(guess() for _ in range(40)))
    assert codes.count(401) == 5
    assert codes.count(429) == 35


async def test_a_password_typed_as_username_is_not_audited(make_api: MakeApi) -> None:
    """People type the password into the username field; the failed-login audit entry
    (Redis, shown on the dashboard) must not keep it."""
    api = await make_api()
    r = await api.client.post(
        "/api/auth/login", json={"username": API_PASSWORD, "password": "admin"}
    )
    assert r.status_code == 401
    entries = await api.redis.xrange(api.keys.audit)
    assert entries, "the failed login was not audited"
    assert all(API_PASSWORD not in json.dumps(fields) for _, fields in entries)


async def test_refresh_rotates_and_reuse_revokes_the_family(make_api: MakeApi) -> None:
    api = await make_api()
    first = await api.login()
    r = await api.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 200
    second = r.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert await _status(api, second["access_token"]) == 200
    r = await api.client.post("/api/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert r.status_code == 200
    third = r.json()
    # replaying a spent refresh token: refused, and the whole login is revoked
    r = await api.client.post("/api/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert r.status_code == 401
    assert "reuse" in r.json()["detail"]
    r = await api.client.post("/api/auth/refresh", json={"refresh_token": third["refresh_token"]})
    assert r.status_code == 401
    assert await _status(api, third["access_token"]) == 401
    # another login is unaffected
    assert await _status(api, (await api.login())["access_token"]) == 200


async def test_access_token_cannot_refresh(make_api: MakeApi) -> None:
    api = await make_api()
    pair = await api.login()
    r = await api.client.post("/api/auth/refresh", json={"refresh_token": pair["access_token"]})
    assert r.status_code == 401


async def test_password_hash_setting(make_api: MakeApi) -> None:
    from kubetrade.api.auth import hash_password

    api = await make_api(
        dashboard_password=None, dashboard_password_hash=hash_password("pw-hash-1")
    )
    r = await api.client.post("/api/auth/login", json={"password": "pw-hash-1"})
    assert r.status_code == 200
