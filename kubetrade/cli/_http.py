"""What every command that serves HTTP (``kubetrade local``, ``kubetrade api``) shares:
the bind address rule and the uvicorn settings, proxy headers above all.

Proxy headers (``X-Forwarded-For``, ``X-Forwarded-Proto``) are trusted only from the
addresses given with ``--forwarded-allow-ips`` (default: none, so the peer address is
the client). The login limiter keys on the client uvicorn yields, so an untrusted
header cannot give each attempt a new identity. This module is the one place that
builds a :class:`uvicorn.Config` (uvicorn's own defaults trust loopback).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import uvicorn


def add_http_arguments(parser: argparse.ArgumentParser) -> None:
    """``--forwarded-allow-ips`` (both commands already have ``--host``/``--port``)."""
    parser.add_argument(
        "--forwarded-allow-ips", default="", type=forwarded_allow_ips, metavar="IPS",
        help="comma-separated addresses or networks of reverse proxies whose "
        "X-Forwarded-For/-Proto headers are trusted, e.g. 10.0.0.5,10.1.0.0/16, or '*' "
        "(default: none; the login throttle keys on the client address this yields)",
    )


def forwarded_allow_ips(value: str) -> str:
    """``value`` checked: '' (trust none), '*', or a comma list of IPs/networks.

    Raises argparse.ArgumentTypeError naming the first bad entry.
    """
    entries = [e.strip() for e in value.split(",") if e.strip()]
    if entries == ["*"]:
        return "*"
    for entry in entries:
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{entry!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/8)"
            ) from None
    return ",".join(entries)


def is_loopback(host: str) -> bool:
    """``host`` is ``localhost`` or a loopback address (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host(host: str, auth_enabled: bool, command: str,
               weak_password: str | None = None) -> str:
    """``host`` when allowed; raises ConfigError (a ValueError) when it would expose an
    API without authentication on a non-loopback address. ``weak_password`` (why the
    password is easy to guess) is a warning there: anyone on the network may try it."""
    from kubetrade.cli._config import ConfigError

    if is_loopback(host):
        return host
    if not auth_enabled:
        raise ConfigError(
            f"--host {host}: DASHBOARD_PASSWORD is not set, so the API has no "
            f"authentication and {command} may only listen on loopback (127.0.0.1, ::1); "
            "set DASHBOARD_PASSWORD to listen on other addresses"
        )
    if weak_password is not None:
        logging.getLogger("kubetrade.cli").warning(
            "DASHBOARD_PASSWORD is weak (%s) and %s listens on %s, reachable from the "
            "network: set a longer one (or DASHBOARD_PASSWORD_HASH)",
            weak_password, command, host)
    return host


def uvicorn_config(app: Any, *, host: str, port: int, forwarded: str,
                   graceful_s: int, **extra: Any) -> uvicorn.Config:
    """The server settings: our JSON logging (uvicorn's config would bypass the
    redaction), no Server header, a bounded graceful stop, small WebSocket frames, and
    proxy headers only from ``forwarded`` (as :func:`forwarded_allow_ips` returns)."""
    import uvicorn  # here: the parser is built without importing the server

    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,
        timeout_graceful_shutdown=graceful_s,
        proxy_headers=bool(forwarded),
        forwarded_allow_ips=forwarded or "",  # never uvicorn's default (loopback)
        server_header=False,
        ws_max_size=64 * 1024,
        **extra,
    )
