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


def test_members_are_a_no_log_option_and_unset_rosters_stay_unmanaged():
    """Ansible's validator, as AnsibleModule runs it: every member address is a no_log value (masked
    wherever it would be printed), and a list without owners/moderators/members leaves them None, which
    the module reads as "not managed" (an empty list would remove them all)."""
    from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: PLC0415

    members = ["a@example.test", "b@example.test"]
    result = ArgumentSpecValidator(mailman_lists.ARGUMENT_SPEC).validate({
        "rest_url": "http://127.0.0.1:8001/3.1", "rest_user": "restadmin", "rest_password": "pw",
        "lists": [{"name": "dev@lists.example.test", "members": members}, {"name": "ann@lists.example.test"}],
    })
    assert result.error_messages == []
    assert set(members) <= result._no_log_values
    first, second = result.validated_parameters["lists"]
    assert first["owners"] is None and first["moderators"] is None
    assert second["members"] is None and second["purge_members"] is False and second["state"] == "present"
    unknown = ArgumentSpecValidator(mailman_lists.ARGUMENT_SPEC).validate({
        "rest_url": "u", "rest_user": "u", "rest_password": "p",
        "lists": [{"name": "x@y.test", "member": []}],
    })
    assert any("member" in message for message in unknown.error_messages), unknown.error_messages
