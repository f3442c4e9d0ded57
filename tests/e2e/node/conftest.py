"""The node is one per machine (a machine-wide lock): stop it when this package's tests
are done, so a long `pytest tests` does not hold it (and keep other runs waiting) until
the end of its session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.bed import Bed


@pytest.fixture(scope="package", autouse=True)
def _release_the_node(_bed: Bed) -> Iterator[None]:
    yield
    _bed.stop_node()
