#!/usr/bin/env python3
"""Print the size figures of the architecture rule: files over 500 lines, functions
over 60 lines, classes over 400 lines, under kubetrade/ (or the paths given).

    python scripts/code_shape.py [PATH ...] [--limits FILE FUNC CLASS]

Exit status 1 when anything is over a limit, so `make lint` can hold the line.
Lines are physical lines of the source (docstrings and comments included), as `wc -l`
counts them; a function's lines run from its `def` (decorators excluded) to its last line.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

FILE_LIMIT, FUNC_LIMIT, CLASS_LIMIT = 500, 60, 400


def _nodes(tree: ast.AST) -> Iterator[tuple[str, str, int]]:
    """(kind, qualified name, lines) for every function and class in ``tree``."""

    def walk(node: ast.AST, prefix: str) -> Iterator[tuple[str, str, int]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                end = child.end_lineno or child.lineno
                kind = "class" if isinstance(child, ast.ClassDef) else "function"
                yield kind, name, end - child.lineno + 1
                yield from walk(child, name + ".")
            else:
                yield from walk(child, prefix)

    yield from walk(tree, "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", default=["kubetrade"])
    parser.add_argument("--limits", nargs=3, type=int, metavar=("FILE", "FUNC", "CLASS"),
                        default=[FILE_LIMIT, FUNC_LIMIT, CLASS_LIMIT])
    args = parser.parse_args(argv)
    file_limit, func_limit, class_limit = args.limits
    files = sorted(f for p in args.paths for f in
                   ([Path(p)] if Path(p).is_file() else Path(p).rglob("*.py")))
    over: list[str] = []
    biggest = {"file": ("", 0), "function": ("", 0), "class": ("", 0)}
    total = 0
    for path in files:
        text = path.read_text()
        n = len(text.splitlines())
        total += n
        biggest["file"] = max(biggest["file"], (str(path), n), key=lambda t: t[1])
        if n > file_limit:
            over.append(f"file      {n:5d}  {path}")
        for kind, name, lines in _nodes(ast.parse(text)):
            biggest[kind] = max(biggest[kind], (f"{path}:{name}", lines), key=lambda t: t[1])
            limit = class_limit if kind == "class" else func_limit
            if lines > limit:
                over.append(f"{kind:9s} {lines:5d}  {path}:{name}")
    print(f"{len(files)} files, {total} lines; limits: file {file_limit}, "
          f"function {func_limit}, class {class_limit}")
    for kind, (name, lines) in biggest.items():
        print(f"largest {kind:8s} {lines:5d}  {name}")
    print(f"over the limits: {len(over)}")
    for line in sorted(over, key=lambda s: -int(s.split()[1])):
        print("  " + line)
    return 1 if over else 0


if __name__ == "__main__":
    sys.exit(main())
