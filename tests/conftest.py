"""Root conftest: loads every fixture module under tests/fixtures as a pytest plugin.

Each area of the project keeps its fixtures (test-bed servers, fake exchange, fake
Telegram, ...) in its own module there, so no two areas edit one shared file.
"""

from __future__ import annotations

import pkgutil
from pathlib import Path

_FIXTURES = Path(__file__).parent / "fixtures"

pytest_plugins = [
    f"tests.fixtures.{m.name}"
    for m in sorted(pkgutil.iter_modules([str(_FIXTURES)]), key=lambda m: m.name)
    if not m.name.startswith("_")
]
