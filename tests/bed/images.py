"""Container images for the node, built here without a registry or Docker.

- base: a Debian bookworm root filesystem from `mmdebstrap` (python3.11, venv, CA
  certificates) committed under the name the Dockerfile's `FROM` uses,
  `python:3.11-slim-bookworm`. It is NOT the official Python image: Debian's
  python3.11 in /usr/bin, through python-is-python3; it only stands in for it so the
  Dockerfile builds as it is.
- project: the repository's Dockerfile, built as it is by `buildah bud` (vfs storage,
  host network so pip reaches the package index the way pip on this machine does).
- redis: Debian's redis-server on a minimal Debian root filesystem.
- pause: build/pause/linux/pause.c from the k8s.io/kubernetes module, `gcc -Os -static`.

Each image is written as an OCI archive under `.cache/bed/images/` with a stamp (hash
of its inputs); the project image's stamp covers the Dockerfile, .dockerignore and every
file the build context sends, so a code change rebuilds it and nothing else does.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tests.bed.build import BuildError, _build_lock, _go, _require
from tests.bed.paths import CACHE, HACK, REPO

IMAGES = CACHE / "bed" / "images"
BUILDAH_ROOT = CACHE / "bed" / "buildah"
SUITE = "bookworm"
MIRRORS = (
    os.environ.get("KUBETRADE_DEBIAN_MIRROR", "http://deb.debian.org/debian"),
    os.environ.get("KUBETRADE_DEBIAN_SECURITY_MIRROR", "http://deb.debian.org/debian-security"),
)
BASE_NAME = "docker.io/library/python:3.11-slim-bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates", "netbase",
                 "tzdata")  # fmt: skip
REDIS_NAME = "localhost/kubetrade-bed/redis:7.0-bookworm"
REDIS_PACKAGES = ("redis-server",)
PAUSE_NAME = "localhost/kubetrade-bed/pause:v1.34"
PROJECT_REPOSITORY = "localhost/kubetrade-bed/kubetrade"
BUILD_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Image:
    """One built image: its reference and the OCI archive `ctr images import` loads."""

    name: str
    archive: Path

    @property
    def repository(self) -> str:
        return self.name.rsplit(":", 1)[0]

    @property
    def tag(self) -> str:
        return self.name.rsplit(":", 1)[1]


@dataclass(frozen=True)
class Images:
    """Every image the node needs."""

    pause: Image
    redis: Image
    project: Image

    def all(self) -> tuple[Image, ...]:
        return (self.pause, self.redis, self.project)


def image_problem() -> str | None:
    """Why the images cannot be built here (a missing tool), or None."""
    for tool in ("buildah", "mmdebstrap", "gcc"):
        if shutil.which(tool) is None:
            return f"{tool} not found: run scripts/system-deps.sh (or `make test`)"
    if os.geteuid() != 0:
        return "building the node's images needs root (buildah, mmdebstrap)"
    return None


def _run(cmd: list[str], what: str, **kwargs: object) -> str:
    result = subprocess.run(  # type: ignore[call-overload]
        cmd, capture_output=True, text=True, timeout=BUILD_TIMEOUT, **kwargs
    )
    if result.returncode != 0:
        tail = "\n".join(f"{result.stdout}{result.stderr}".splitlines()[-40:])
        raise BuildError(f"{what}: `{' '.join(cmd)}` failed ({result.returncode}):\n{tail}")
    return str(result.stdout)


def _buildah(*args: str) -> list[str]:
    return [
        "buildah", "--root", str(BUILDAH_ROOT / "root"), "--runroot", str(BUILDAH_ROOT / "run"),
        "--storage-driver", "vfs", *args,
    ]  # fmt: skip


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part)
        h.update(b"\0")
    return h.hexdigest()


def _fresh(image: Image, stamp: str) -> bool:
    path = image.archive.with_suffix(".stamp")
    return image.archive.exists() and path.exists() and path.read_text() == stamp


def _save(image: Image, stamp: str, started: float) -> None:
    """Write the image from buildah's storage to its OCI archive, then its stamp."""
    tmp = image.archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    _run(_buildah("push", image.name, f"oci-archive:{tmp}:{image.name}"), f"export {image.name}")
    tmp.replace(image.archive)
    image.archive.with_suffix(".stamp").write_text(stamp)
    took = time.monotonic() - started
    print(f"testbed: built image {image.name} in {took:.0f}s", file=sys.stderr, flush=True)


def _rootfs_image(name: str, packages: tuple[str, ...], config: list[str]) -> None:
    """mmdebstrap a minimal Debian with `packages`, commit it to buildah as `name`."""
    tar = IMAGES / f"{name.rsplit('/', 1)[-1].replace(':', '_')}.rootfs.tar"
    sources = [f"deb {MIRRORS[0]} {SUITE} main", f"deb {MIRRORS[0]} {SUITE}-updates main",
               f"deb {MIRRORS[1]} {SUITE}-security main"]  # fmt: skip
    _run(
        ["mmdebstrap", "--variant=minbase", f"--include={','.join(packages)}",
         "--aptopt=Acquire::Retries \"3\"", "--dpkgopt=path-exclude=/usr/share/doc/*",
         "--dpkgopt=path-exclude=/usr/share/man/*", "--format=tar", SUITE, str(tar), *sources],
        f"mmdebstrap {name}",
    )  # fmt: skip
    try:
        ctr = _run(_buildah("from", "scratch"), "buildah from scratch").strip()
        _run(_buildah("add", ctr, str(tar), "/"), f"unpack {tar.name}")
        _run(_buildah("config", *config, ctr), f"configure {name}")
        _run(_buildah("commit", "--rm", ctr, name), f"commit {name}")
    finally:
        tar.unlink(missing_ok=True)


def _debian_image(name: str, packages: tuple[str, ...], config: list[str]) -> Image:
    image = Image(name, IMAGES / f"{name.rsplit('/', 1)[-1].replace(':', '_')}.oci.tar")
    stamp = _digest([name.encode(), *(p.encode() for p in packages), *(m.encode() for m in MIRRORS),
                     " ".join(config).encode()])  # fmt: skip
    if _fresh(image, stamp):
        return image
    started = time.monotonic()
    _rootfs_image(name, packages, config)
    _save(image, stamp, started)
    return image


def base_image() -> Image:
    """Debian bookworm + python3.11 as `python:3.11-slim-bookworm` (what the Dockerfile's
    FROM names); kept in buildah's storage for the project build."""
    config = ["--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
              "--env", "LANG=C.UTF-8", "--cmd", "python3"]  # fmt: skip
    image = _debian_image(BASE_NAME, BASE_PACKAGES, config)
    have = subprocess.run(_buildah("inspect", "--type", "image", BASE_NAME), capture_output=True)
    if have.returncode != 0:  # buildah's storage was wiped: load the archive back
        _run(_buildah("pull", f"oci-archive:{image.archive}"), f"load {BASE_NAME}")
    return image


def redis_image() -> Image:
    """Debian's redis-server (7.0) on minimal Debian, for the chart's StatefulSet."""
    return _debian_image(REDIS_NAME, REDIS_PACKAGES, ["--cmd", "redis-server"])


def pause_image() -> Image:
    """The pod sandbox's pause process, compiled from the k8s.io/kubernetes module."""
    version = _require("k8s.io/kubernetes")
    image = Image(PAUSE_NAME, IMAGES / "pause.oci.tar")
    stamp = _digest([PAUSE_NAME.encode(), version.encode(), b"gcc -Os -static"])
    if _fresh(image, stamp):
        return image
    started = time.monotonic()
    moddir = _run([_go(), "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"], "locate module",
                  cwd=HACK).strip()  # fmt: skip
    if not moddir:
        _run([_go(), "mod", "download", f"k8s.io/kubernetes@{version}"], "download", cwd=HACK)
        moddir = _run([_go(), "list", "-m", "-f", "{{.Dir}}", "k8s.io/kubernetes"], "locate module",
                      cwd=HACK).strip()  # fmt: skip
    exe = IMAGES / "pause"
    _run(["gcc", "-Os", "-static", "-Wall", f"-DVERSION={version}", "-o", str(exe),
          f"{moddir}/build/pause/linux/pause.c"], "compile pause.c")  # fmt: skip
    ctr = _run(_buildah("from", "scratch"), "buildah from scratch").strip()
    _run(_buildah("copy", ctr, str(exe), "/pause"), "copy pause")
    _run(_buildah("config", "--entrypoint", '["/pause"]', "--user", "65535:65535", ctr), "config")
    _run(_buildah("commit", "--rm", ctr, PAUSE_NAME), "commit pause")
    _save(image, stamp, started)
    return image


def _context_files() -> list[Path]:
    """The Dockerfile, .dockerignore and what its COPY instructions take from the
    build context (tracked and untracked files, not git-ignored, no bytecode): a change
    to any of them changes the image, a change elsewhere does not."""
    sources: list[str] = []
    for line in (REPO / "Dockerfile").read_text().splitlines():
        words = line.split()
        if words[:1] == ["COPY"] and not any(w.startswith("--from") for w in words):
            sources += [w for w in words[1:-1] if not w.startswith("--")]
    out = _run(["git", "ls-files", "-co", "--exclude-standard", "--", *sources], "list", cwd=REPO)
    files = {REPO / "Dockerfile", REPO / ".dockerignore"}
    for rel in out.splitlines():
        if "__pycache__" not in rel and not rel.endswith(".pyc") and (REPO / rel).is_file():
            files.add(REPO / rel)
    return sorted(files)


def project_image() -> Image:
    """The Dockerfile as it is, built FROM the Debian base; rebuilt when its inputs change."""
    files = _context_files()
    stamp = _digest([b for f in files for b in (str(f.relative_to(REPO)).encode(), f.read_bytes())])
    image = Image(f"{PROJECT_REPOSITORY}:{stamp[:12]}", IMAGES / "kubetrade.oci.tar")
    if _fresh(image, stamp):
        return image
    base_image()
    started = time.monotonic()
    volumes: list[str] = []
    # pip inside the build reaches the package index the way pip on this machine does:
    # the host's pip configuration and CA bundle, mounted for the RUN steps only (not
    # in the image).
    for path in ("/etc/pip.conf", "/etc/ssl/certs/ca-certificates.crt"):
        if Path(path).is_file():
            volumes += ["--volume", f"{path}:{path}:ro"]
    # Earlier builds of the project: their storage is a full copy each (vfs).
    listed = subprocess.run(_buildah("images", "--format", "{{.Name}}:{{.Tag}}"),
                            capture_output=True, text=True)  # fmt: skip
    for old in listed.stdout.split():
        if old.startswith(PROJECT_REPOSITORY + ":"):
            subprocess.run(_buildah("rmi", "-f", old), capture_output=True)
    subprocess.run(_buildah("rm", "--all"), capture_output=True)
    # No --layers: one commit per stage (each layer is a full copy with vfs); a code
    # change re-runs the pip install anyway, as the Dockerfile copies the code first.
    _run(_buildah("bud", "--network", "host", "--pull-never", *volumes,
                  "-f", "Dockerfile", "-t", image.name, "."), "build the Dockerfile",
         cwd=REPO)  # fmt: skip
    _save(image, stamp, started)
    return image


def ensure_images() -> Images:
    """Build whatever image is missing or stale (serialised with the binary builds)."""
    problem = image_problem()
    if problem is not None:
        raise BuildError(problem)
    IMAGES.mkdir(parents=True, exist_ok=True)
    with _build_lock():
        return Images(pause=pause_image(), redis=redis_image(), project=project_image())
