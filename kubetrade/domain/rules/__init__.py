"""``algorithm: rules``: entry/exit conditions in CEL over a catalogue of indicators.

- ``spec.RulesSpec``: the ``spec.rules`` model; validating it compiles it.
- ``algorithm.RulesAlgorithm``: the ``Algorithm`` that trades it.
- ``catalogue.KINDS``: the indicators; ``ta``/``ta_range`` (live, O(1) per candle) and
  ``bulk`` (replay, TA-Lib + numpy) compute them.

See docs/strategies.md.
"""
