"""The one `kubetrade` command.

Each subcommand is a module of this package exposing ``register(subparsers)``; the
module registers its parser and sets ``func`` to a callable taking the parsed
arguments and returning an exit code. Discovery keeps components from editing a
shared file, and a component that has not landed is simply absent, never a stub.
Modules and packages whose name begins with an underscore are helpers of the
subcommands (e.g. ``_local``, the assembly of ``kubetrade local``), not subcommands.

Building the parser imports every subcommand module, so those modules import what their
command runs inside the function that runs it: ``kubetrade --help`` (and each command)
then loads none of ccxt, kubernetes, FastAPI, pyarrow or redis it does not use. These
function-level imports are on purpose; elsewhere imports are at module level unless a
comment says why (start-up time, an optional dependency, a cycle).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence
from pathlib import Path

from kubetrade import __version__


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubetrade",
        description="Kubernetes-native crypto trading bot.",
    )
    parser.add_argument("--version", action="version", version=f"kubetrade {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(subparsers)
    return parser


def load_dotenv_file(path: str = ".env") -> bool:
    """The runbook's set-up is `cp .env.example .env`: read it, never over real variables
    (strictly UTF-8; unknown keys warned by name: see :mod:`kubetrade.cli._config`)."""
    from kubetrade.cli._config import load_env_file

    return load_env_file(Path(path))


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    from kubetrade.cli._config import ConfigError, report

    given = list(sys.argv[1:] if argv is None else argv)
    command = given[0] if given and not given[0].startswith("-") else ""
    try:
        load_dotenv_file()
        parser = build_parser()
        args = parser.parse_args(argv)
        command = str(getattr(args, "command", "") or "")
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return 2
        result = args.func(args)
    except (ConfigError, ValidationError) as exc:  # one clear line per bad setting
        return report(command or "(settings)", exc)
    return int(result or 0)
