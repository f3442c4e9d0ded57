"""``/api/auth/*``: password login, refresh-token rotation, logout.

Every failure and success is audited (``auth.*``); failed logins are rate-limited per
client address (429 with ``Retry-After``).
"""

import asyncio
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.types import DecoratedCallable

from kubetrade.api import schemas as s
from kubetrade.api.auth import AuthError, TokenPair
from kubetrade.api.deps import Audit, Ctx, User
from kubetrade.api.routes.common import AUTH_RESPONSES, BAD

router = APIRouter()

_AUTH_DISABLED = "authentication is disabled: DASHBOARD_PASSWORD is not set"
_AUTH_OFF: dict[int | str, dict[str, Any]] = {
    400: {"model": s.ErrorOut, "description": "Authentication is disabled."},
}
"""The documented answer of login and refresh while ``_AUTH_DISABLED``."""


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _token_out(pair: TokenPair) -> s.TokenOut:
    return s.TokenOut(
        access_token=pair.access_token,
        refresh_token=pair.refresh_token,
        expires_in=pair.expires_in,
    )


def _token_route(
    path: str, failures: dict[int | str, dict[str, Any]]
) -> Callable[[DecoratedCallable], DecoratedCallable]:
    """The route of an endpoint that answers a token pair (login, refresh): 400 while
    authentication is disabled, ``failures`` for the endpoint's own refusals."""
    return router.post(
        path,
        response_model=s.TokenOut,
        tags=["auth"],
        responses={**_AUTH_OFF, **failures, **BAD},
    )


@_token_route(
    "/api/auth/login",
    {
        401: {"model": s.ErrorOut, "description": "Wrong username or password."},
        429: {"model": s.ErrorOut, "description": "Too many failed logins; see Retry-After."},
    },
)
async def login(body: s.LoginIn, request: Request, ctx: Ctx, audit: Audit) -> s.TokenOut:
    """Exchange the dashboard password for an access and a refresh token."""
    password = ctx.password
    if password is None:
        raise HTTPException(400, _AUTH_DISABLED)
    client = _client(request)
    retry = await ctx.limiter.attempt(client)
    if retry is not None:
        ctx.metrics.login_failures.inc()
        await audit.record("api:unauthenticated", "auth.login_throttled", {"client": client})
        raise HTTPException(
            429,
            f"too many failed logins; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )
    ok = await asyncio.to_thread(password.check, body.username, body.password)
    if not ok:
        ctx.metrics.login_failures.inc()
        # an unknown name is not recorded: it is often the password typed into the
        # wrong field
        known = body.username == ctx.settings.dashboard_username
        await audit.record(
            "api:unauthenticated",
            "auth.login_failed",
            {"client": client, "username": body.username if known else "(unknown)"},
        )
        raise HTTPException(
            401, "wrong username or password", headers={"WWW-Authenticate": "Bearer"}
        )
    await ctx.limiter.succeeded(client)
    pair = await ctx.tokens.issue(body.username)
    await audit.record(f"api:{body.username}", "auth.login", {"client": client})
    return _token_out(pair)


@_token_route(
    "/api/auth/refresh",
    {401: {"model": s.ErrorOut, "description": "Invalid, expired, revoked or reused."}},
)
async def refresh(body: s.RefreshIn, ctx: Ctx, audit: Audit) -> s.TokenOut:
    """Rotate a refresh token: returns a new pair; the presented token is spent.
    Presenting a spent refresh token again revokes the whole session."""
    if ctx.password is None:
        raise HTTPException(400, _AUTH_DISABLED)
    try:
        pair, _user = await ctx.tokens.refresh(body.refresh_token)
    except AuthError as exc:
        if "reuse" in str(exc):
            await audit.record("api:unauthenticated", "auth.refresh_reuse", {})
        raise HTTPException(
            401, str(exc), headers={"WWW-Authenticate": 'Bearer error="invalid_token"'}
        ) from None
    return _token_out(pair)


@router.post(
    "/api/auth/logout",
    status_code=204,
    tags=["auth"],
    responses={**AUTH_RESPONSES, **BAD},
)
async def logout(user: User, ctx: Ctx, audit: Audit) -> Response:
    """Revoke the session: the access token and every refresh token of its login."""
    if user.claims is not None:
        await ctx.tokens.revoke(user.claims)
        await ctx.tokens.revoke_family(str(user.claims["fam"]))
        await audit.record(user.actor, "auth.logout", {})
    return Response(status_code=204)
