"""Regression tests for issue 16: input the filters accepted but Postfix 3.7 rejects or misreads.

Each input of the issue's table is refused with an error that names the field, or accepted and
then read back by postfix_parse_master_cf (and by postconf: tests/oracle/test_postfix_oracle.py).
"""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pytest
from support.postfix_cases import ACCEPTED_PARAMS, ACCEPTED_SERVICES, svc

MAIN = "postfix_main_cf: instance '-', parameter 'smtpd_banner': "
MASTER = "postfix_master_cf: instance '-', service 'foo/unix': "


def refused(pf: ModuleType, prefix: str) -> Any:
    return pytest.raises(pf.AnsibleFilterError, match="^" + re.escape(prefix))


# Defects 1-4: macro expressions and {...} groups in main.cf values and -o overrides.
BAD_VALUES = [
    "${a-b}",  # 1: not a parameter name
    "${{a}==b?x}",  # 1: the right operand of a relational expression is not {text}
    "${{a}}",  # 1: no operator
    "${myhostname?{a}x}",  # 1: garbage after {text}
    "${myhostname?{a}:{b}c}",  # 1
    "${?x}",  # 2: empty name
    "{{a}b}",  # 3: the group rule applies inside groups too
    "{x {a}b}",  # 3
    "hash:{x {a}b}",  # 3
    "check_policy_service { unix:private/policy, {a}b }",  # 3
    "${myhostname?{{a}b}}",  # 3: the expanded value is {a}b
    "$mynetworks{b}c",  # a reference may expand to text that ends in a blank
    "x${relayhost}{b}c",  # ... or to nothing
    "{",  # 4: unbalanced, in main.cf too
    "a\x00b",  # 5: NUL
    # Found by the differential test with 5,000 cases:
    "a\tb",  # postconf shows a tab as a space
    "x ${smtpd_banner}",  # a value that expands its own parameter: unreasonable macro call nesting
]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_values_postfix_rejects_or_misreads_are_refused(pf: ModuleType, value: str) -> None:
    with refused(pf, MAIN + "value"):
        pf.postfix_main_cf([{"name": "smtpd_banner", "value": value}])
    with refused(pf, MAIN + "value[1]"):
        pf.postfix_main_cf([{"name": "smtpd_banner", "value": ["ok", value]}])
    with refused(pf, MASTER + "options.smtpd_banner"):
        pf.postfix_master_cf([svc(options={"smtpd_banner": value})])


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"command": "sm\x00tpd"}, "command"),  # 5
        ({"args": ["a\x00b"]}, "args[0]"),  # 5
        ({"args": ["-vo", "smtpd_banner=x"]}, "args[0]"),  # 6: getopt reads -v -o
        ({"args": ["-o{x=y}"]}, "args[0]"),  # 6: -o {x=y}
        ({"args": ["-Do", "ab"]}, "args[0]"),  # 6
        ({"args": ["-Do", "a\x0bb"]}, "args[1]"),  # 6, and a control character
        ({"args": ["-", "x=y"]}, "args[0]"),  # postconf reads a lone '-' as taking a value
        ({"wakeup": "\u0663?"}, "wakeup"),  # 7: Arabic-Indic digit
        ({"wakeup": "\uff11\uff10?"}, "wakeup"),  # 7: full-width digits
        ({"maxproc": "\u00b2"}, "maxproc"),  # 8: int('²') raised ValueError
        ({"comment": "a\x00b"}, "comment"),
    ],
)
def test_service_fields_postfix_misreads_are_refused(
    pf: ModuleType, fields: dict[str, Any], field: str
) -> None:
    with refused(pf, MASTER + field):
        pf.postfix_master_cf([svc(**fields)])


def test_unicode_digit_port_is_refused_not_a_crash(pf: ModuleType) -> None:
    with refused(pf, "postfix_master_cf: instance '-', service '\u00b2/inet': name of an inet service"):
        pf.postfix_master_cf([{"name": "\u00b2", "type": "inet", "command": "smtpd"}])


def test_control_character_message(pf: ModuleType) -> None:
    with refused(
        pf,
        MASTER + "command must not contain control characters or unpaired surrogates, got '\\x00' in "
        "'sm\\x00tpd'",
    ):
        pf.postfix_master_cf([svc(command="sm\x00tpd")])


def test_option_cluster_message(pf: ModuleType) -> None:
    message = (
        MASTER + "args[0]: Postfix reads '-vo' as daemon options letter by letter, and the letter o takes a "
        "value (an override); use options instead, or put '--' before arguments that start with '-'"
    )
    with pytest.raises(pf.AnsibleFilterError, match=f"^{re.escape(message)}$"):
        pf.postfix_master_cf([svc(args=["-vo", "smtpd_banner=x"])])


def test_accepted_inputs_parse_back(pf: ModuleType) -> None:
    text = pf.postfix_master_cf(ACCEPTED_SERVICES)
    parsed = pf.postfix_parse_master_cf(text, keep_comments=True)
    assert [s["args"] for s in parsed] == [s.get("args", []) for s in ACCEPTED_SERVICES]
    assert [s["options"] for s in parsed] == [s.get("options", {}) for s in ACCEPTED_SERVICES]
    assert [s["comment"] for s in parsed] == [s.get("comment", "") for s in ACCEPTED_SERVICES]
    assert "  { # y } z\n" in text
    assert pf.postfix_main_cf(ACCEPTED_PARAMS[:2]) == "smtpd_banner = \u2003x\u2003\n"


def test_parser_splits_lines_at_newline_only(pf: ModuleType) -> None:
    text = "# \x1c c\nfoo unix - - - - - smtpd\n  a\u2028b\n# \x0b#\nbar unix - - - - - smtpd\n"
    parsed = pf.postfix_parse_master_cf(text, keep_comments=True)
    assert [(s["name"], s["args"], s["comment"]) for s in parsed] == [
        ("foo", ["a\u2028b"], "\x1c c"),
        ("bar", [], "\x0b#"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "foo unix - - - - \u00b2 smtpd\n",
            "service 'foo/unix': maxproc must be an integer or '-', got '\u00b2'",
        ),
        (
            "foo unix - - - - - smtpd {a}b\n",
            "a field that starts with '{' must be one {...} group, got '{a}b'",
        ),
        ("foo unix - - - - - sm\x00tpd\n", "input must not contain NUL characters"),
    ],
)
def test_parser_refuses_what_postfix_rejects(pf: ModuleType, text: str, message: str) -> None:
    with refused(pf, f"postfix_parse_master_cf: {message}"):
        pf.postfix_parse_master_cf(text)
