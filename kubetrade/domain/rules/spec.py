"""``spec.rules`` as a pydantic model, and its compilation into a ``RuleSet``.

Validation *is* compilation: a spec whose expressions do not parse, name an unknown
indicator or variable, do not type-check as conditions, or need more warm-up than the
runner can fetch is refused by the model, with the expression's line and column, so
``kubetrade validate``, ``kubetrade local`` and the operator refuse it before any
candle. Compiled rule sets are cached by content: one compilation per spec.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from kubetrade.domain.rules.catalogue import CANDLE_FIELDS, KINDS, Kind
from kubetrade.domain.rules.cel import CompiledRule, compile_rule, prev_name
from kubetrade.domain.rules.parse import MAX_LENGTH, Node, RuleError, history_needs, parse, where

MAX_WARMUP = 1000
"""Most candles of warm-up a rules strategy may need: what one history request can fetch
at start (forward validation does; Binance serves at most 1000 candles per request)."""
MAX_INDICATORS = 20
NAME_PATTERN = r"^[a-z][a-z0-9_]{0,39}$"
RESERVED = frozenset(
    {*CANDLE_FIELDS, "true", "false", "null", "in", "as", "break", "const", "continue",
     "else", "for", "function", "if", "import", "let", "loop", "package", "namespace",
     "return", "var", "void", "while", "prev", "crossed_above", "crossed_below"}
)


class RulesSpec(BaseModel):
    """Entry and exit conditions (CEL) over named indicators of the Strategy's candles."""

    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )

    indicators: dict[str, Annotated[dict[str, dict[str, Any]], Field(
        min_length=1, max_length=1, description="{kind: {parameters}}, one kind."
    )]] = Field(
        default_factory=dict,
        max_length=MAX_INDICATORS,
        description="Named indicators, each {kind: {parameters}}, e.g. fast: {ema: {period: "
        "12}}. Kinds: " + ", ".join(KINDS) + ". See docs/strategies.md.",
    )
    entry: str = Field(
        min_length=1,
        max_length=MAX_LENGTH,
        description="CEL condition to enter long on a closed candle, e.g. "
        "'crossed_above(fast, slow) && rsi < 70'.",
    )
    exit: str = Field(
        min_length=1,
        max_length=MAX_LENGTH,
        description="CEL condition to exit (sell the position); wins over entry when both "
        "hold.",
    )

    @model_validator(mode="after")
    def _compiles(self) -> Self:
        compile_rules(self)
        return self


@dataclass(frozen=True)
class Declared:
    """One declared indicator: its name, kind and validated parameters."""

    name: str
    kind: Kind
    params: BaseModel

    def variables(self) -> list[str]:
        return [self.name] if not self.kind.outputs else [
            f"{self.name}.{o}" for o in self.kind.outputs
        ]


@dataclass(frozen=True)
class RuleSet:
    """A compiled ``spec.rules``: what the algorithm needs per candle."""

    spec: RulesSpec
    declared: tuple[Declared, ...]
    entry: CompiledRule
    exit: CompiledRule
    entry_ast: Node
    exit_ast: Node
    history: dict[str, int]
    """Variable -> deepest prev() depth read (0: only the current value)."""
    lookback: dict[str, int]
    """Variable -> candles before its first value (candle fields: 0)."""
    warmup: int
    """Closed candles before the first possible signal (it can come on this one)."""
    key: str
    """The spec's canonical JSON: identifies the rule set (snapshots carry it)."""


def _declare(spec: RulesSpec) -> list[Declared]:
    out: list[Declared] = []
    for name, body in spec.indicators.items():
        if not re.fullmatch(NAME_PATTERN, name) or "__" in name:
            raise ValueError(
                f"indicators.{name}: a name is lower case letters, digits and single "
                "underscores, starting with a letter (at most 40 characters)"
            )
        if name in RESERVED:
            raise ValueError(f"indicators.{name}: {name!r} is reserved (a candle field or "
                             "a word of the language)")
        kind_name, params = next(iter(body.items()))
        kind = KINDS.get(kind_name)
        if kind is None:
            raise ValueError(f"indicators.{name}: unknown kind {kind_name!r}; kinds: "
                             f"{', '.join(KINDS)}")
        try:
            model, indicator = kind.build(params)
        except ValidationError as exc:
            problems = "; ".join(
                f"indicators.{name}.{kind_name}.{'.'.join(str(p) for p in e['loc'])}: "
                f"{e['msg'].removeprefix('Value error, ')}" if e["loc"] else
                f"indicators.{name}.{kind_name}: {e['msg'].removeprefix('Value error, ')}"
                for e in exc.errors()
            )
            raise ValueError(problems) from None
        if indicator.lookback + 1 > MAX_WARMUP:
            raise ValueError(
                f"indicators.{name}: needs {indicator.lookback + 1} candles of warm-up; "
                f"at most {MAX_WARMUP} are available"
            )
        out.append(Declared(name, kind, model))
    return out


def _lookbacks(declared: list[Declared]) -> dict[str, int]:
    lookback = dict.fromkeys(CANDLE_FIELDS, 0)
    for d in declared:
        lb = d.kind.make(d.params).lookback
        for v in d.variables():
            lookback[v] = lb
    return lookback


def _one(field: str, src: str, known: frozenset[str], lookback: dict[str, int]
         ) -> tuple[Node, dict[str, int], int]:
    """Parse ``src``; the AST, its history needs and the warm-up it implies."""
    try:
        node = parse(src, known)
    except RuleError as exc:
        raise ValueError(f"{field}, {where(src, exc.pos)}: {exc.message}") from None
    needs = history_needs(node, {})
    warm = 0
    for var, depth in needs.items():
        need = lookback[var] + depth + 1
        if need > MAX_WARMUP:
            raise ValueError(
                f"{field}: {var} with prev depth {depth} needs {need} candles of warm-up; "
                f"at most {MAX_WARMUP} are available"
            )
        warm = max(warm, need)
    return node, needs, warm


def _compiled(field: str, src: str, node: Node, variables: list[str]) -> CompiledRule:
    try:
        return compile_rule(src, node, variables)
    except RuleError as exc:
        raise ValueError(f"{field}, {where(src, exc.pos)}: {exc.message}") from None


def compile_rules(spec: RulesSpec) -> RuleSet:
    """The compiled rule set of ``spec`` (cached by content). ValueError naming the
    field (``indicators.<name>...``, ``entry`` or ``exit``) and, in an expression, the
    line and column of the problem."""
    key = json.dumps(spec.model_dump(mode="json"), sort_keys=True)
    return _compile_cached(key)


@lru_cache(maxsize=256)
def _compile_cached(key: str) -> RuleSet:
    raw = json.loads(key)
    spec = RulesSpec.model_construct(**raw)
    declared = _declare(spec)
    lookback = _lookbacks(declared)
    known = frozenset(lookback)
    entry_ast, entry_needs, entry_warm = _one("entry", spec.entry, known, lookback)
    exit_ast, exit_needs, exit_warm = _one("exit", spec.exit, known, lookback)
    history = dict(entry_needs)
    for var, depth in exit_needs.items():
        history[var] = max(history.get(var, 0), depth)
    variables = sorted(history) + sorted(
        prev_name(v, k) for v, d in history.items() for k in range(1, d + 1)
    )
    warmup = max([entry_warm, exit_warm, *(lookback[v] + 1 for d in declared
                                            for v in d.variables())])
    return RuleSet(
        spec=spec,
        declared=tuple(declared),
        entry=_compiled("entry", spec.entry, entry_ast, variables),
        exit=_compiled("exit", spec.exit, exit_ast, variables),
        entry_ast=entry_ast,
        exit_ast=exit_ast,
        history=history,
        lookback=lookback,
        warmup=warmup,
        key=key,
    )
