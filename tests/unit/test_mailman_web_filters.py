"""plugin_utils/mailman_web.py: Django settings rendered from data (filter mailman_web_settings)."""

import ast
import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mailstack.site.plugins.plugin_utils.mailman_web import mailman_web_settings
from hypothesis import given
from hypothesis import strategies as st


def read_back(source: str) -> dict:
    """Execute nothing: parse each assignment and evaluate its literal."""
    result = {}
    for node in ast.parse(source).body:
        assert isinstance(node, ast.Assign), ast.dump(node)
        result[node.targets[0].id] = ast.literal_eval(node.value)
    return result


def test_settings_are_python_in_the_given_order():
    source = mailman_web_settings(
        {
            "SECRET_KEY": "a'b\"c\\d",
            "DEBUG": False,
            "ADMINS": [["Admin", "root@example.org"]],
            "ALLOWED_HOSTS": ["lists.example.org", "10.0.0.61"],
            "DATABASES": {"default": {"ENGINE": "django.db.backends.postgresql", "PORT": 5432}},
            "CACHES": {"default": {"TIMEOUT": None}},
            "MAILMAN_ARCHIVER_FROM": ("10.0.0.21",),
            "RATIO": 0.5,
        }
    )
    assert source.splitlines()[:3] == [
        "SECRET_KEY = 'a\\'b\"c\\\\d'",
        "DEBUG = False",
        "ADMINS = [['Admin', 'root@example.org']]",
    ]
    assert "MAILMAN_ARCHIVER_FROM = ('10.0.0.21',)" in source
    assert read_back(source)["DATABASES"]["default"]["PORT"] == 5432
    assert read_back(source)["CACHES"] == {"default": {"TIMEOUT": None}}
    assert source.endswith("\n")


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ([], "input must be a mapping of setting name to value, got list"),
        ({"debug": True}, "setting name 'debug' is not a Django setting"),
        ({"1X": 1}, "setting name '1X' is not a Django setting"),
        ({"NONE_": 1, "A-B": 1}, "setting name 'A-B' is not a Django setting"),
        ({"DATABASES": {"default": {1: "x"}}}, "setting DATABASES['default']: keys must be strings, got 1"),
        ({"X": [1, {"a": object()}]}, "setting X[1]['a']: object has no Python literal"),
        ({"X": float("nan")}, "setting X: nan is not a finite number"),
    ],
)
def test_bad_settings_are_refused_naming_the_setting(settings, message):
    with pytest.raises(AnsibleFilterError, match="^mailman_web_settings: " + re.escape(message)):
        mailman_web_settings(settings)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.from_regex(r"[A-Z][A-Z0-9_]{0,10}", fullmatch=True), json_values, max_size=6))
def test_any_data_reads_back_unchanged(settings):
    assert read_back(mailman_web_settings(settings)) == settings
