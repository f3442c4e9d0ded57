"""A SIGTERM that lands inside library code still ends `kubetrade validate` as
terminated (exit 143, the ValidationRun failed for SIGTERM), not as a crash.

CI saw it: the signal arrived while `import ccxt` ran a class body, and Python
wrapped the handler's Terminated in a RuntimeError from ``__set_name__``.
"""

from __future__ import annotations

import argparse
import signal
from types import SimpleNamespace
from typing import Any

import pytest

from kubetrade.cli import validate


class _TerminatedInSetName:
    def __set_name__(self, owner: type, name: str) -> None:
        validate._terminated(signal.SIGTERM, None)


def _wrapped_termination() -> RuntimeError:
    try:
        type("ImplicitAPI", (), {"entry": _TerminatedInSetName()})
    except RuntimeError as exc:
        return exc
    raise AssertionError("the class body did not wrap the exception")


def test_a_termination_wrapped_by_a_class_body_is_found() -> None:
    wrapped = _wrapped_termination()
    assert not isinstance(wrapped, validate.Terminated)
    found = validate.termination_in(wrapped)
    assert isinstance(found, validate.Terminated) and "SIGTERM" in str(found)


def test_other_errors_are_not_a_termination() -> None:
    try:
        try:
            raise KeyError("a")
        except KeyError as inner:
            raise RuntimeError("b") from inner
    except RuntimeError as exc:
        assert validate.termination_in(exc) is None


def test_run_exits_143_when_the_termination_comes_back_wrapped(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def execute(args: Any) -> Any:
        raise _wrapped_termination()

    monkeypatch.setattr(validate, "execute", execute)
    assert validate.run(argparse.Namespace()) == 128 + signal.SIGTERM
    assert "terminated before the run completed" in capsys.readouterr().err


class _Reporter:
    def __init__(self) -> None:
        self.failed: list[str] = []

    def fail(self, reason: str) -> None:
        self.failed.append(reason)


def test_the_validation_run_is_failed_for_sigterm_not_for_the_wrapper(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    reporter = _Reporter()
    plan = SimpleNamespace(sweep=None)
    monkeypatch.setattr(validate, "build_plan", lambda args: (plan, None, reporter))

    def run_plan(*args: Any) -> Any:
        raise _wrapped_termination()

    monkeypatch.setattr("kubetrade.validation.run.run_plan", run_plan)
    with pytest.raises(validate.Terminated):
        validate.execute(argparse.Namespace(report_dir=str(tmp_path), no_html=True))
    assert reporter.failed == ["Terminated: terminated by SIGTERM"]
