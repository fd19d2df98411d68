"""Fixtures of the oracle tests: ``oracle``, a container with Debian's Postfix (tests/support/oracle.py),
and ``pf``, the Postfix model's functions. Every test here needs a Docker engine (marker ``docker``)."""

from __future__ import annotations

from collections.abc import Iterator
from types import ModuleType

import pytest
import support.postfix
from support.oracle import Oracle, running_oracle


@pytest.fixture(scope="session")
def pf() -> ModuleType:
    """The Postfix model's functions."""
    return support.postfix


@pytest.fixture(scope="session")
def oracle(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Oracle]:
    """One Postfix container for the whole session, removed at the end."""
    with running_oracle(tmp_path_factory.mktemp("oracle")) as running:
        yield running
