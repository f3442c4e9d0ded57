"""The one error of market data: a candle input that no exchange would have sent."""

from __future__ import annotations


class CandleDataError(ValueError):
    """A candle file, Parquet table or downloaded page refused by a validation rule.

    ``source`` is the file path (or a description such as ``binance BTC/USDT 1m page``),
    ``line`` the 1-based line of a CSV (header = line 1) or row of a Parquet table /
    page (None when the rule is about the whole input), ``rule`` a short stable name
    (``not-finite``, ``high-below-open-close``, ``time-unit``, ``conflicting-duplicate``,
    ``timeframe-mismatch``...). ``str()`` is ``source:line: rule: detail``. A
    subclass of ValueError, so callers that refused bad files with ValueError still do.
    """

    def __init__(self, source: str, line: int | None, rule: str, detail: str,
                 *, unit: str = "line") -> None:
        where = f"{source}:{line}" if line is not None else source
        unit_note = "" if line is None or unit == "line" else f" ({unit} {line})"
        super().__init__(f"{where}: {rule}: {detail}{unit_note}")
        self.source = source
        self.line = line
        self.rule = rule
        self.detail = detail
