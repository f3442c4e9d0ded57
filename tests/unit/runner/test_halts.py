"""The runner's halt sources survive a restart: they are read back from the text of
the engine's manual halt, so the change that lifts one of them still finds it."""

from __future__ import annotations

from kubetrade.runner.core import _Halts, halt_sources


def test_sources_round_trip_through_the_halt_text() -> None:
    halts = _Halts({"disabled": "spec.enabled is false",
                    "emergency": "stop by ops: drill; then more; and more"})
    assert halt_sources(halts.text()) == halts.reasons


def test_text_no_source_claims_is_lifted_by_an_emergency_resume() -> None:
    assert halt_sources("halted by hand") == {"emergency": "halted by hand"}
    assert halt_sources("") == {}
