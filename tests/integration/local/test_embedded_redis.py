"""The embedded Redis of `kubetrade local` (issue 17 item 1): a real server (Lua, append-
only file in the data directory), one per data directory, its data kept across a stop."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from kubetrade.cli._local.embedded_redis import EmbeddedRedis, find_server


def test_a_real_server_keeps_data_in_its_directory(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    try:
        r = redis.Redis.from_url(server.url, decode_responses=True)
        assert r.eval("return redis.call('set', KEYS[1], ARGV[1])", 1, "k", "v") == "OK"
        assert r.config_get("appendonly")["appendonly"] == "yes"
        assert r.config_get("port")["port"] == "0"  # no TCP: the unix socket only
        r.close()
    finally:
        server.stop()
    assert (tmp_path / "data" / "appendonlydir").is_dir()
    again = EmbeddedRedis(tmp_path / "data")
    try:
        r = redis.Redis.from_url(again.url, decode_responses=True)
        assert r.get("k") == "v"
        r.close()
    finally:
        again.stop()


def test_a_second_process_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    server = EmbeddedRedis(tmp_path / "data")
    try:
        # the test process is alive and owns the first server: refused, first untouched
        with pytest.raises(OSError, match="in use by another kubetrade local"):
            EmbeddedRedis(tmp_path / "data")
        assert redis.Redis.from_url(server.url).ping()
    finally:
        server.stop()


def test_the_binary_is_found() -> None:
    assert find_server().name in {"redis-server", "valkey-server"}


def test_without_redis_server_on_path_the_bundled_valkey_serves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    server = EmbeddedRedis(tmp_path / "data")
    try:
        assert server.binary.name == "valkey-server"
        r = redis.Redis.from_url(server.url)
        assert r.eval("return 1", 0) == 1
        r.close()
    finally:
        server.stop()
