"""Where the test bed keeps binaries, stamps and per-run state.

Everything lives under the git-ignored `.cache/` of the checkout, so a fresh clone
starts clean and `rm -rf .cache` is a full reset.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("KUBETRADE_CACHE_DIR", REPO / ".cache"))
BIN = CACHE / "bin"
RUN = CACHE / "run"
HACK = REPO / "hack"
