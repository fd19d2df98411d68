"""roles/mailman_core/files/mailstack_mailman/recipients.py: the plugin's recipient rules, without Mailman.

The plugin's handler feeds these rules with one row per member from one query; the scenario of
roles/mailman_core compares the whole pipeline with Mailman's own on random populations.
"""

import importlib.util
from pathlib import Path

import pytest

MODULE = Path(__file__).resolve().parents[2] / "roles/mailman_core/files/mailstack_mailman/recipients.py"
spec = importlib.util.spec_from_file_location("recipients", MODULE)
recipients = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recipients)

RULES = {"regular": "regular", "enabled": "enabled", "default_mode": "regular", "default_status": "enabled"}


@pytest.mark.parametrize(("chain", "default", "expected"), [
    ((None, None, None), "site", "site"),
    (("member", "address", "user"), "site", "member"),
    ((None, "address", "user"), "site", "address"),
    ((None, None, "user"), "site", "user"),
    ((False, True, True), True, False),  # False is a value, not "unset"
    ((None, False, None), True, False),
    ((), "site", "site"),
])
def test_the_first_level_that_sets_a_preference_wins(chain, default, expected):
    assert recipients.effective(chain, default) == expected


def test_only_regular_enabled_members_get_the_copy():
    rows = [
        ("plain@example.test", (None, None, None), (None, None, None)),
        ("digest@example.test", ("mime_digests", None, None), (None, None, None)),
        ("nomail@example.test", (None, None, None), ("by_user", None, None)),
        ("bounced@example.test", (None, None, None), (None, "by_bounces", None)),
        ("moderated@example.test", (None, None, None), (None, None, "by_moderator")),
        ("user-digest@example.test", (None, None, "plaintext_digests"), (None, None, None)),
        ("overrides@example.test", ("regular", "summary_digests", None), ("enabled", "by_user", "by_user")),
    ]
    assert recipients.regular_recipients(rows, **RULES) == {"plain@example.test", "overrides@example.test"}


def test_an_address_subscribed_twice_is_one_recipient_and_a_disabled_twin_does_not_remove_it():
    rows = [
        ("twice@example.test", (None, None, None), (None, None, None)),
        ("twice@example.test", (None, None, None), ("by_user", None, None)),
    ]
    assert recipients.regular_recipients(rows, **RULES) == {"twice@example.test"}


def test_the_site_defaults_decide_when_nothing_is_set():
    rows = [("a@example.test", (None, None, None), (None, None, None))]
    assert recipients.regular_recipients(rows, **{**RULES, "default_status": "by_user"}) == set()
    assert recipients.regular_recipients(rows, **{**RULES, "default_mode": "mime_digests"}) == set()
    assert recipients.regular_recipients([], **RULES) == set()
