"""Settings as every subcommand reads them: the ``.env`` file and one clear error per
bad setting (exit 2, no traceback, never a secret's value).

- ``.env`` (the runbook's ``cp .env.example .env``) is read strictly as UTF-8; a file
  that is not says which line, and the command stops. Real variables win over it.
- A key in ``.env`` that no part of kubetrade reads is warned about by name (a misspelt
  ``DASHBOARD_PASSWRD`` would otherwise leave the API without a password, silently).
- A pydantic ``ValidationError`` from a settings class is printed one line per field
  with the rule broken, never the value (which may be a secret).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from io import StringIO
from pathlib import Path

from pydantic import ValidationError

#: Variables kubetrade reads besides the fields of its settings classes.
KNOWN_VARIABLES = frozenset({
    "REDIS_URL", "LOG_LEVEL", "METRICS_PORT", "POD_NAME", "POD_NAMESPACE", "KUBECONFIG",
    "BINANCE_API_KEY", "BINANCE_SECRET_KEY", "BINANCE_TESTNET",
    "STOP_LOSS_PCT", "DAILY_LOSS_LIMIT_PCT", "MAX_POSITION_SIZE_PCT",
    "MAX_CONCURRENT_POSITIONS", "TRADING_TIMEFRAMES", "FORWARDED_ALLOW_IPS",
})
#: Prefixes of the project's own variables (the operator's and runner's many knobs).
KNOWN_PREFIXES = ("KUBETRADE_", "TELEGRAM_")


RUNBOOK_NAMES = {
    "SYMBOLS": "each Strategy's spec.symbols (examples/strategies/*.yaml)",
}
"""Variables of the runbook's ``.env`` that kubetrade reads from the Strategy files: the
warning for one says where it went instead of "misspelt?"."""


class ConfigError(ValueError):
    """A setting that cannot work; the message names it and the rule, never a secret."""


def known_names() -> frozenset[str]:
    """Every variable name kubetrade reads (upper case)."""
    from kubetrade.api.settings import ApiSettings
    from kubetrade.notify.settings import NotifySettings

    fields = {n.upper() for cls in (ApiSettings, NotifySettings) for n in cls.model_fields}
    return KNOWN_VARIABLES | fields


def read_env_file(path: Path) -> dict[str, str | None]:
    """``path``'s assignments; ConfigError when it is not UTF-8 (naming the line)."""
    from dotenv import dotenv_values

    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ConfigError(
            f"{path}: line {line} is not valid UTF-8 (byte 0x{raw[exc.start]:02x}); "
            "save the file as UTF-8"
        ) from None
    return dict(dotenv_values(stream=StringIO(text)))


def unknown_keys(keys: Iterable[str]) -> list[str]:
    """The keys no part of kubetrade reads, in file order."""
    known = known_names()
    return [k for k in keys if k.upper() not in known and not k.upper().startswith(KNOWN_PREFIXES)]


def load_env_file(path: Path = Path(".env")) -> bool:
    """Read ``path`` into the environment (never over real variables); warn on stderr
    for each unknown key. False when there is no file; ConfigError when it is unreadable."""
    if not path.is_file():
        return False
    values = read_env_file(path)
    for key in unknown_keys(values):
        where = RUNBOOK_NAMES.get(key.upper())
        hint = f"in kubetrade it is {where}" if where else "misspelt?"
        print(f"kubetrade: warning: {path}: {key} is not a kubetrade setting (ignored; "
              f"{hint})", file=sys.stderr)
    for key, value in values.items():
        if value is not None and key not in os.environ:
            os.environ[key] = value
    return True


def describe(exc: ValidationError) -> list[str]:
    """One line per bad field: ``NAME: rule`` (the input is never shown)."""
    lines = []
    for err in exc.errors(include_input=False, include_url=False):
        name = ".".join(str(p) for p in err["loc"]).upper() or exc.title
        msg = str(err["msg"]).removeprefix("Value error, ")
        lines.append(f"{name}: {msg}")
    return lines


def report(command: str, exc: ConfigError | ValidationError) -> int:
    """Print ``exc`` as the command's error lines on stderr; the exit code (2)."""
    lines = describe(exc) if isinstance(exc, ValidationError) else [str(exc)]
    for line in lines:
        print(f"kubetrade {command}: {line}", file=sys.stderr)
    return 2
