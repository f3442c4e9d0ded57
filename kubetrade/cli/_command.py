"""What the sub-commands' parsers share: the sub-parser itself (name, one-line help,
description, the function it runs) and the options that say which cluster and
namespace a command acts on, so that each ``register`` adds only what is its own."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any

#: ``--kubeconfig``'s help where a command tries the in-cluster service account first.
KUBECONFIG_HELP = "kubeconfig (default: in-cluster, then $KUBECONFIG)"


def add_command(
    subparsers: Any,
    name: str,
    run: Callable[[argparse.Namespace], int],
    summary: str,
    description: str,
) -> argparse.ArgumentParser:
    """The parser of ``kubetrade <name>`` (``summary``: its line in ``kubetrade --help``),
    whose parsed arguments go to ``run``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name, help=summary, description=description
    )
    parser.set_defaults(func=run)
    return parser


def tcp_port(text: str) -> int:
    """An argparse type: a TCP port to listen on (1-65535)."""
    port = int(text) if text.strip().isdigit() else -1
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port (1-65535)")
    return port


def seconds(text: str) -> float:
    """An argparse type: a duration in seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")
    return value


def pod_namespace() -> str:
    """``$POD_NAMESPACE`` (in a pod, its own namespace), else ``default``."""
    return os.environ.get("POD_NAMESPACE", "default")


def add_cluster_arguments(
    parser: argparse.ArgumentParser,
    namespace: tuple[str | None, str | None],
    *,
    short: bool = True,
    kubeconfig: str | None = KUBECONFIG_HELP,
    local: str | None = None,
) -> None:
    """``--namespace`` (and ``-n`` when ``short``) with ``namespace`` = (default, help);
    ``--kubeconfig`` and ``--local`` (use the local desired state in Redis) with their
    help, unless that is None."""
    default, help_text = namespace
    flags = ("--namespace", "-n") if short else ("--namespace",)
    parser.add_argument(*flags, default=default, help=help_text)
    if kubeconfig is not None:
        parser.add_argument("--kubeconfig", default=None, help=kubeconfig)
    if local is not None:
        parser.add_argument("--local", action="store_true", help=local)
