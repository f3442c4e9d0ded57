"""The architecture rules of docs/architecture.md, checked rather than described.

- the import arrows of DESIGN.md: the import-linter contracts in pyproject.toml
  (``[tool.importlinter]``), the same check ``make lint`` runs with ``lint-imports``;
- the shape: no file under kubetrade/ over 500 lines, no function over 60, no class over
  400, as ``scripts/code_shape.py`` counts them;
- Redis is spoken only in kubetrade/state/: no Redis command called on a Redis client
  (or its pub/sub and pipeline objects) anywhere else (the import of redis itself is the
  contract "Redis only in kubetrade.state").
"""

from __future__ import annotations

import ast
import importlib.util
import io
from contextlib import redirect_stdout
from pathlib import Path
from types import ModuleType

import pytest
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[2]

# Over a limit today, each with who is on it ("path:qualified.name": owner). An entry
# that is no longer over fails the test below, so the list only shrinks. Empty: keep it so.
KNOWN_OVER: dict[str, str] = {}


def test_import_contracts_hold(capsys: pytest.CaptureFixture[str]) -> None:
    code = lint_imports(
        config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True
    )
    report = capsys.readouterr().out
    assert code == 0, report


def _code_shape() -> ModuleType:
    spec = importlib.util.spec_from_file_location("code_shape", ROOT / "scripts/code_shape.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _over_the_limits() -> dict[str, str]:
    """``{"path:qualname" or "path": the script's line}`` for everything over a limit."""
    out = io.StringIO()
    with redirect_stdout(out):
        _code_shape().main([str(ROOT / "kubetrade")])
    lines = out.getvalue().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("over the limits:"))
    over: dict[str, str] = {}
    for line in lines[start + 1 :]:
        path, _, name = line.split()[2].partition(":")
        relative = Path(path).relative_to(ROOT).as_posix()
        over[f"{relative}:{name}" if name else relative] = line.strip()
    return over


def test_no_file_function_or_class_over_the_limits() -> None:
    over = _over_the_limits()
    new = {name: line for name, line in over.items() if name not in KNOWN_OVER}
    assert not new, "over the limits of docs/architecture.md:\n" + "\n".join(new.values())
    fixed = sorted(set(KNOWN_OVER) - set(over))
    assert not fixed, f"no longer over a limit, remove from KNOWN_OVER: {fixed}"


# redis-py's command methods (and the pub/sub and pipeline ones) a caller outside
# kubetrade/state/ must not call
REDIS_METHODS = frozenset({
    "get", "set", "setex", "setnx", "getset", "getdel", "mget", "mset", "delete", "exists",
    "expire", "pexpire", "ttl", "incr", "incrby", "decr", "hget", "hgetall", "hset", "hdel",
    "hexists", "hincrby", "hmget", "hkeys", "hvals", "hlen", "xadd", "xrange", "xrevrange",
    "xread", "xreadgroup", "xgroup_create", "xack", "xlen", "xtrim", "publish", "pubsub",
    "subscribe", "psubscribe", "unsubscribe", "get_message", "listen", "pipeline", "execute",
    "transaction", "eval", "evalsha", "register_script", "ping", "scan_iter", "keys", "lpush",
    "rpush", "lrange", "ltrim", "zadd", "zrange", "zrangebyscore", "zrem", "sadd", "srem",
    "smembers", "flushdb", "info", "watch", "multi",
})

# Files outside kubetrade/state/ allowed to talk to Redis, each with its reason.
REDIS_ALLOWED: dict[str, str] = {
    "kubetrade/cli/_local/embedded_redis.py":
        "starts kubetrade local's own Redis server and waits until it answers a ping "
        "(the process, not the data)",
}


def _redis_like(node: ast.expr, bound: set[str]) -> bool:
    """A receiver that is a Redis client by name (``redis``, ``self._redis``,
    ``ctx.redis``) or a name bound to its ``pubsub()``/``pipeline()``."""
    text = ast.unparse(node)
    return "redis" in text.lower() or text in bound


def redis_calls(source: str) -> list[tuple[int, str]]:
    """``(line, "receiver.method")`` of every Redis command called in ``source``."""
    tree = ast.parse(source)
    bound: set[str] = set()
    for node in ast.walk(tree):  # names bound to a client's pubsub()/pipeline()
        targets: list[ast.expr] = []
        value: ast.expr | None = None
        if isinstance(node, ast.Assign | ast.AnnAssign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
        elif isinstance(node, ast.withitem) and node.optional_vars is not None:
            targets, value = [node.optional_vars], node.context_expr
        if (isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute)
                and value.func.attr in ("pubsub", "pipeline")
                and _redis_like(value.func.value, set())):
            bound.update(ast.unparse(t) for t in targets)
    return sorted(
        (node.lineno, f"{ast.unparse(node.func.value)}.{node.func.attr}")
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
        and node.func.attr in REDIS_METHODS and _redis_like(node.func.value, bound)
    )


def test_the_scan_finds_redis_calls() -> None:
    source = (
        "async def f(self, redis, ctx):\n"
        "    await self._redis.hset('k', 'f', 'v')\n"
        "    await ctx.redis.ping()\n"
        "    pubsub = redis.pubsub()\n"
        "    await pubsub.subscribe('c')\n"
        "    async with redis.pipeline() as pipe:\n"
        "        pipe.incr('k')\n"
        "    {}.get('not redis')\n"
    )
    assert [call for _, call in redis_calls(source)] == [
        "self._redis.hset", "ctx.redis.ping", "redis.pubsub", "pubsub.subscribe",
        "redis.pipeline", "pipe.incr",
    ]


def test_only_kubetrade_state_calls_redis() -> None:
    found = []
    for path in sorted((ROOT / "kubetrade").rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        if relative.startswith("kubetrade/state/") or relative in REDIS_ALLOWED:
            continue
        found += [f"{relative}:{line}: {call}" for line, call in redis_calls(path.read_text())]
    assert not found, (
        "Redis called outside kubetrade/state/ (add a typed reader/writer there, see "
        "docs/architecture.md):\n" + "\n".join(found)
    )


def wait_for_calls(source: str) -> list[int]:
    """Lines of ``source`` that call ``asyncio.wait_for`` (as ``asyncio.wait_for`` or a
    name imported from asyncio)."""
    tree = ast.parse(source)
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom) and node.module == "asyncio"
                for alias in node.names if alias.name == "wait_for"}
    return sorted(
        node.lineno for node in ast.walk(tree) if isinstance(node, ast.Call) and (
            (isinstance(node.func, ast.Attribute) and node.func.attr == "wait_for"
             and ast.unparse(node.func.value) == "asyncio")
            or (isinstance(node.func, ast.Name) and node.func.id in imported)))


def test_the_scan_finds_wait_for() -> None:
    source = ("import asyncio\nfrom asyncio import wait_for as wf\n"
              "async def f(e):\n    await asyncio.wait_for(e.wait(), 1)\n"
              "    await wf(e.wait(), 1)\n    await e.wait_for(1)\n")
    assert wait_for_calls(source) == [4, 5]


def test_no_asyncio_wait_for_in_kubetrade() -> None:
    """Python 3.11's ``asyncio.wait_for`` returns the result and drops a cancellation
    that arrives as the awaited operation finishes (CPython gh-86296, fixed in 3.12):
    a runner or ``kubetrade local`` told to stop then runs on. ``asyncio.timeout()``
    keeps the cancellation; use it (or ``asyncio.wait`` for a task)."""
    found = [f"{path.relative_to(ROOT).as_posix()}:{line}"
             for path in sorted((ROOT / "kubetrade").rglob("*.py"))
             for line in wait_for_calls(path.read_text())]
    assert not found, "asyncio.wait_for in kubetrade/ (use asyncio.timeout):\n" + "\n".join(
        found)
