"""Fixtures of the unit tests: ``pf``, the Postfix model's functions (tests/support/postfix.py)."""

from __future__ import annotations

from types import ModuleType

import pytest
import support.postfix


@pytest.fixture(scope="session")
def pf() -> ModuleType:
    """The Postfix model's functions."""
    return support.postfix
