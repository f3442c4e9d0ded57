"""The app's error handlers: never a stack trace or a secret in a response body.

Redis down → 503; the Kubernetes API down → 503; a change that breaks a rule → 422;
no such object → 404; a request that fails validation → 422 with field locations only
(no input echoed back); anything else → 500 with a generic message (logged here).
"""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from kubetrade.state.client import RedisError
from kubetrade.state.desired import DesiredStateError, NotFoundError
from kubetrade.state.desired_k8s import DesiredStateUnavailable

log = logging.getLogger("kubetrade.api")


async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
    detail = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return JSONResponse({"detail": detail}, status_code=422)


async def redis_down(_: Request, exc: RedisError) -> JSONResponse:
    log.error("redis error: %s", type(exc).__name__)
    return JSONResponse({"detail": "state store (Redis) unavailable"}, status_code=503)


async def desired_down(_: Request, exc: DesiredStateUnavailable) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)


async def desired_invalid(_: Request, exc: DesiredStateError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=422)


async def not_found(_: Request, exc: NotFoundError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=404)


async def crash(request: Request, exc: Exception) -> JSONResponse:
    log.error(
        "unhandled error on %s %s",
        request.method,
        request.url.path,
        exc_info=(type(exc), exc, exc.__traceback__),
    )
    return JSONResponse({"detail": "internal server error"}, status_code=500)


def install_error_handlers(app: FastAPI) -> None:
    """Register every handler above on ``app``."""
    app.exception_handler(RequestValidationError)(invalid_request)
    app.exception_handler(RedisError)(redis_down)
    app.exception_handler(DesiredStateUnavailable)(desired_down)
    app.exception_handler(DesiredStateError)(desired_invalid)
    app.exception_handler(NotFoundError)(not_found)
    app.exception_handler(Exception)(crash)
