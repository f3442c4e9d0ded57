"""The rule language: a subset of CEL over indicator values, parsed with positions.

Grammar (CEL's precedence; every value is a double or a bool)::

    expr    := or ('?' expr ':' expr)?
    or      := and ('||' and)*
    and     := rel ('&&' rel)*
    rel     := add (('<' | '<=' | '>' | '>=' | '==' | '!=') add)?
    add     := mul (('+' | '-') mul)*
    mul     := unary (('*' | '/') unary)*
    unary   := ('!' | '-') unary | primary
    primary := NUMBER | true | false | NAME ('.' NAME)? | call | '(' expr ')'
    call    := prev '(' NAME ',' INT ')' | crossed_above '(' arg ',' arg ')'
             | crossed_below '(' arg ',' arg ')'          (arg: NAME or number)

``crossed_above(a, b)`` is ``a > b && prev(a, 1) <= prev(b, 1)``; ``prev(x, n)`` is
``x`` n closed candles ago. Nothing else (no strings, lists, macros or other functions)
is accepted, so an expression can read indicator values and nothing more, and its
cost is bounded by its length (``MAX_LENGTH``). This module only parses and resolves
names; ``cel.py`` type-checks and evaluates through the CEL library.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_LENGTH = 2000
"""Longest expression accepted, in characters."""
MAX_DEPTH = 64
"""Deepest nesting of parentheses and unary operators the parser follows."""
MAX_LEVELS = 24
"""Deepest expression tree accepted (CEL's own limit is 32 levels of its tree, which
``crossed_*`` and number literals make a little deeper than ours)."""

_TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+\.\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?|\d+(?:[eE][+-]?\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<op>&&|\|\||<=|>=|==|!=|[<>!+\-*/().,?:]))"
)


class RuleError(ValueError):
    """An expression that cannot be used; ``pos`` is the 0-based offset in it."""

    def __init__(self, message: str, pos: int) -> None:
        super().__init__(message)
        self.message = message
        self.pos = pos


@dataclass(frozen=True, slots=True)
class Node:
    """One AST node. ``op`` is 'num', 'bool', 'var', 'prev', 'neg', 'not', 'cond' or a
    binary operator; ``value`` holds the literal, the variable name or prev's depth."""

    op: str
    pos: int
    args: tuple[Node, ...] = ()
    value: float | bool | str | int | None = None
    name: str = ""


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # num, name, op, end
    text: str
    pos: int


def tokenize(src: str) -> list[_Tok]:
    """Tokens with their offsets; RuleError at the first character that fits none."""
    out: list[_Tok] = []
    i = 0
    n = len(src)
    while True:
        while i < n and src[i].isspace():
            i += 1
        if i >= n:
            out.append(_Tok("end", "", n))
            return out
        m = _TOKEN.match(src, i)
        if m is None or m.lastgroup is None:
            raise RuleError(f"unexpected character {src[i]!r}", i)
        kind = m.lastgroup
        out.append(_Tok(kind, m.group(kind), m.start(kind)))
        i = m.end()


class Parser:
    """Recursive descent over ``tokenize``'s tokens; ``known`` is every variable name
    an expression may read (indicator outputs and candle fields)."""

    def __init__(self, src: str, known: frozenset[str]) -> None:
        if len(src) > MAX_LENGTH:
            raise RuleError(f"expression longer than {MAX_LENGTH} characters", MAX_LENGTH)
        if not src.strip():
            raise RuleError("empty expression", 0)
        self.toks = tokenize(src)
        self.i = 0
        self.known = known
        self.depth = 0

    def parse(self) -> Node:
        node = self.expr()
        tok = self.peek()
        if tok.kind != "end":
            raise RuleError(f"unexpected {tok.text!r}", tok.pos)
        return node

    # -- token helpers
    def peek(self) -> _Tok:
        return self.toks[self.i]

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def expect(self, text: str) -> _Tok:
        tok = self.take()
        if tok.text != text or tok.kind not in ("op", "name"):
            found = "the end" if tok.kind == "end" else repr(tok.text)
            raise RuleError(f"expected {text!r}, found {found}", tok.pos)
        return tok

    def _at(self, *ops: str) -> bool:
        tok = self.peek()
        return tok.kind == "op" and tok.text in ops

    # -- grammar
    def expr(self) -> Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise RuleError(f"expression nested deeper than {MAX_DEPTH}", self.peek().pos)
        node = self.binary(0)
        if self._at("?"):
            pos = self.take().pos
            yes = self.expr()
            self.expect(":")
            no = self.expr()
            node = Node("cond", pos, (node, yes, no))
        self.depth -= 1
        return node

    _LEVELS: tuple[tuple[str, ...], ...] = (
        ("||",),
        ("&&",),
        ("<", "<=", ">", ">=", "==", "!="),
        ("+", "-"),
        ("*", "/"),
    )

    def binary(self, level: int) -> Node:
        if level == len(self._LEVELS):
            return self.unary()
        ops = self._LEVELS[level]
        node = self.binary(level + 1)
        while self._at(*ops):
            tok = self.take()
            node = Node(tok.text, tok.pos, (node, self.binary(level + 1)))
            if level == 2 and self._at(*ops):
                raise RuleError("comparisons do not chain; join them with &&", self.peek().pos)
        return node

    def unary(self) -> Node:
        if self._at("!", "-"):
            tok = self.take()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise RuleError(f"expression nested deeper than {MAX_DEPTH}", tok.pos)
            arg = self.unary()
            self.depth -= 1
            if tok.text == "-" and arg.op == "num":
                # + 0.0: a negated zero literal is plain 0.0 (CEL reads "-0.0" as 0.0;
                # numpy kept -0.0, so a / -(0) was -inf in replay and +inf live)
                return Node("num", tok.pos, value=-float(arg.value or 0.0) + 0.0)
            return Node("not" if tok.text == "!" else "neg", tok.pos, (arg,))
        return self.primary()

    def primary(self) -> Node:
        tok = self.take()
        if tok.kind == "num":
            value = float(tok.text)
            if not math.isfinite(value):
                raise RuleError(f"number {tok.text} is too large", tok.pos)
            return Node("num", tok.pos, value=value)
        if tok.kind == "op" and tok.text == "(":
            node = self.expr()
            self.expect(")")
            return node
        if tok.kind == "name":
            if tok.text in ("true", "false"):
                return Node("bool", tok.pos, value=tok.text == "true")
            if self._at("("):
                return self.call(tok)
            return self.variable(tok)
        found = "the end of the expression" if tok.kind == "end" else repr(tok.text)
        raise RuleError(f"unexpected {found}", tok.pos)

    def variable(self, tok: _Tok) -> Node:
        name = tok.text
        if self._at("."):
            self.take()
            part = self.take()
            if part.kind != "name":
                raise RuleError("expected an output name after '.'", part.pos)
            name = f"{name}.{part.text}"
        if name not in self.known:
            outputs = sorted(k for k in self.known if k.startswith(name + "."))
            hint = (
                f"; it has outputs {', '.join(outputs)}" if outputs
                else f"; known: {', '.join(sorted(self.known))}"
            )
            raise RuleError(f"unknown indicator or variable {name!r}{hint}", tok.pos)
        return Node("var", tok.pos, name=name)

    def call(self, tok: _Tok) -> Node:
        fn = tok.text
        if fn not in ("prev", "crossed_above", "crossed_below"):
            raise RuleError(
                f"unknown function {fn!r}; functions are prev, crossed_above, crossed_below",
                tok.pos,
            )
        self.expect("(")
        first = self.arg()
        self.expect(",")
        if fn == "prev":
            n_tok = self.take()
            if first.op != "var":
                raise RuleError("prev takes an indicator or candle field first", first.pos)
            if n_tok.kind != "num" or not n_tok.text.isdigit() or int(n_tok.text) < 1:
                raise RuleError("prev's second argument must be a whole number >= 1", n_tok.pos)
            self.expect(")")
            return Node("prev", tok.pos, value=int(n_tok.text), name=first.name)
        second = self.arg()
        self.expect(")")
        now = Node(">" if fn == "crossed_above" else "<", tok.pos, (first, second))
        before = Node(
            "<=" if fn == "crossed_above" else ">=", tok.pos, (_prev1(first), _prev1(second))
        )
        return Node("&&", tok.pos, (now, before))

    def arg(self) -> Node:
        node = self.unary()
        if node.op not in ("var", "num"):
            raise RuleError("expected an indicator, candle field or number", node.pos)
        return node


def _prev1(node: Node) -> Node:
    return node if node.op == "num" else Node("prev", node.pos, value=1, name=node.name)


def depth(node: Node) -> tuple[int, int]:
    """Levels of the AST and the position of its deepest node (no recursion: a chain
    of a thousand ``+`` is as deep as it is long)."""
    deepest, pos = 0, node.pos
    stack = [(node, 1)]
    while stack:
        n, d = stack.pop()
        if d > deepest:
            deepest, pos = d, n.pos
        stack.extend((a, d + 1) for a in n.args)
    return deepest, pos


def parse(src: str, known: frozenset[str]) -> Node:
    """The AST of ``src``; RuleError with the offset of the first problem."""
    node = Parser(src, known).parse()
    levels, pos = depth(node)
    if levels > MAX_LEVELS:
        raise RuleError(
            f"expression {levels} operators deep, at most {MAX_LEVELS}: group long chains, "
            "e.g. (a && b && c) && (d && e && f)",
            pos,
        )
    return node


def history_needs(node: Node, out: dict[str, int]) -> dict[str, int]:
    """For each variable, the deepest ``prev`` depth the expression reads (0: only now)."""
    if node.op == "var":
        out.setdefault(node.name, 0)
    elif node.op == "prev":
        depth = int(node.value or 0)
        if out.get(node.name, 0) < depth:
            out[node.name] = depth
    for arg in node.args:
        history_needs(arg, out)
    return out


def where(src: str, pos: int) -> str:
    """'line L, column C' (1-based) of offset ``pos`` in ``src``, or 'column C'."""
    line = src.count("\n", 0, pos) + 1
    col = pos - (src.rfind("\n", 0, pos) + 1) + 1
    return f"line {line}, column {col}" if "\n" in src else f"column {col}"
