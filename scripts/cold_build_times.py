"""Time a cold build of every test-bed binary: the `go build` commands of
tests/bed/build.py, into a scratch directory, with an empty GOCACHE (the Go module cache
is left as it is: a fresh machine also downloads the modules first, not counted here).
Prints seconds per binary and the total; builds nothing the bed uses.

    .venv/bin/python scripts/cold_build_times.py [--out /tmp/coldbin]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.bed import build


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(tempfile.mkdtemp(prefix="coldbin-")))
    args = parser.parse_args()
    cache = Path(tempfile.mkdtemp(prefix="gocache-"))
    env = dict(os.environ, GOCACHE=str(cache))
    env["GOFLAGS"] = f"{env.get('GOFLAGS', '')} -mod=mod -buildvcs=false".strip()
    started = time.monotonic()
    try:
        for name in [*build.PACKAGES, *build.NODE_PACKAGES]:
            t = time.monotonic()
            cmd = [build._go(), "build", "-p", "2", "-trimpath",
                   f"-ldflags={build._ldflags(name)}", "-o", str(args.out / name),
                   build._ALL[name]]
            result = subprocess.run(cmd, cwd=build._module_dir(name), env=env,  # noqa: S603
                                    capture_output=True, text=True, check=False)
            if result.returncode != 0:
                print(f"{name}: failed\n{result.stderr[-2000:]}", file=sys.stderr)
                return 1
            print(f"{name}: {time.monotonic() - t:.0f} s", flush=True)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"total: {time.monotonic() - started:.0f} s (load {os.getloadavg()[0]:.1f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
