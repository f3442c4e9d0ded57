"""Issue 17 item 4: one clear error per bad setting: exit 2, no traceback, never a
secret's value; unknown `.env` keys warned by name; no unauthenticated API off loopback."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.local_kit import STRATEGIES, base_env
from tests.e2e.test_local import KUBETRADE, _free_port

SECRET = "s3cr3t-but-too-short"  # 20 characters: JWT_SECRET needs 32


def _run(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KUBETRADE, *args], cwd=cwd, env=base_env(**env), capture_output=True, text=True,
        timeout=60, check=False,
    )


def _local(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return _run(cwd, "local", "--strategies", str(STRATEGIES), "--port", str(_free_port()),
                "--data-dir", str(cwd / "data"), "--market-data", "replay:bundled", *args, **env)


def _refused(done: subprocess.CompletedProcess[str], *secrets: str) -> str:
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "Traceback" not in out, out
    for secret in secrets:
        assert secret not in out
    return done.stderr


def test_a_short_jwt_secret_is_named_not_printed(tmp_path: Path) -> None:
    err = _refused(_local(tmp_path, JWT_SECRET=SECRET), SECRET)
    assert "JWT_SECRET must be at least 32 characters" in err


def test_an_unreachable_redis_url_is_one_line_without_its_password(tmp_path: Path) -> None:
    url = f"redis://:hunter2-password@127.0.0.1:{_free_port()}/0"
    err = _refused(_local(tmp_path, REDIS_URL=url), "hunter2-password")
    assert "REDIS_URL" in err and "is unreachable" in err


def test_an_env_file_that_is_not_utf8_names_the_line(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"A_OK=1\nDASHBOARD_PASSWORD=p\xe4ss\n")
    err = _refused(_local(tmp_path))
    assert ".env: line 2 is not valid UTF-8" in err


def test_unknown_env_keys_are_each_named(tmp_path: Path) -> None:
    names = ["DASHBOARD_PASSWRD", "JWT_SECRT", "REDIS_URI", "STOPLOSS_PCT", "TELEGRAM",
             "BINANCE_KEY", "MAX_POSITIONS", "CORS_ORIGIN"]
    known = ["BINANCE_TESTNET=true", "STOP_LOSS_PCT=4", "TELEGRAM_CHAT_ID=1", "LOG_LEVEL=info"]
    (tmp_path / ".env").write_text("\n".join([f"{n}=x" for n in names] + known) + "\n")
    done = _run(tmp_path, "local", "--help")
    assert done.returncode == 0
    warned = [line for line in done.stderr.splitlines() if "is not a kubetrade setting" in line]
    assert [n for n in names if any(f" {n} " in line for line in warned)] == names
    assert len(warned) == len(names)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.10"])
def test_no_password_no_listening_off_loopback(tmp_path: Path, host: str) -> None:
    err = _refused(_local(tmp_path, "--host", host))
    assert f"--host {host}: DASHBOARD_PASSWORD is not set" in err
