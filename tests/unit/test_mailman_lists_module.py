"""roles/mailman_core/library/mailman_lists.py: how data values compare with the REST API's JSON."""

import importlib.util
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "roles" / "mailman_core" / "library" / "mailman_lists.py"
spec = importlib.util.spec_from_file_location("mailman_lists", MODULE)
mailman_lists = importlib.util.module_from_spec(spec)
spec.loader.exec_module(mailman_lists)


@pytest.mark.parametrize(("want", "have"), [
    (True, True), ("yes", True), ("no", False), ("false", False), (0, False),
    (40, 40), ("40", 40), (30, 30.0), ("[dev] ", "[dev] "), ("", None), (None, None),
    (["a@example.test"], ["a@example.test"]), ("accept", "accept"),
])
def test_equal_values_are_not_patched(want, have):
    assert mailman_lists.same(want, have)


@pytest.mark.parametrize(("want", "have"), [
    (False, True), ("yes", False), (41, 40), ("[dev]", "[dev] "), ("x", None),
    ("a@example.test", ["a@example.test"]), ([], ["a@example.test"]), ("hold", "defer"), ("many", 30.0),
])
def test_different_values_are_patched(want, have):
    assert not mailman_lists.same(want, have)


def test_booleans_are_sent_as_words():
    assert mailman_lists.form_value(True) == "true"
    assert mailman_lists.form_value(False) == "false"
    assert mailman_lists.form_value(12) == 12


def test_member_helper_is_valid_python():
    compile(mailman_lists.MEMBER_HELPER, "member-helper", "exec")
