"""Unit tests of the Postfix model (plugin_utils/postfix_*.py): every field, merge rule and error message."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from support.paths import DATA, ROOT

SMTP: dict[str, Any] = {"name": "smtp", "type": "inet", "private": "n", "chroot": "y", "command": "smtpd"}


def svc(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"name": "foo", "type": "unix", "command": "smtpd"}
    base.update(fields)
    return base


def canonical(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "foo",
        "type": "unix",
        "private": "-",
        "unpriv": "-",
        "chroot": "-",
        "wakeup": "-",
        "maxproc": "-",
        "command": "smtpd",
        "args": [],
        "options": {},
        "comment": "",
    }
    base.update(fields)
    return base


def raises(message: str) -> Any:
    return pytest.raises(AnsibleFilterError, match=f"^{re.escape(message)}$")


# ------------------------------------------------------------------------------------------------
# master.cf rendering: every field


def test_master_cf_defaults_and_alignment(pf: ModuleType) -> None:
    body = pf.postfix_master_cf([SMTP, svc(name="proxywrite", maxproc=1, command="proxymap")])
    assert body.splitlines()[3:] == [
        "smtp       inet  n       -       y       -       -       smtpd",
        "proxywrite unix  -       -       -       -       1       proxymap",
    ]


def test_master_cf_long_name_keeps_following_columns(pf: ModuleType) -> None:
    body = pf.postfix_master_cf([svc(name="scalemail-backend", unpriv="n", chroot="n", maxproc=2)])
    assert body.splitlines()[-1] == "scalemail-backend unix - n       n       -       2       smtpd"


def test_master_cf_header(pf: ModuleType) -> None:
    assert pf.postfix_master_cf([]).splitlines() == [
        "# service type  private unpriv  chroot  wakeup  maxproc command + args",
        "#               (yes)   (yes)   (no)    (never) (100)",
        "",
    ]


@pytest.mark.parametrize(
    ("fields", "columns"),
    [
        ({"private": True, "unpriv": False, "chroot": "-"}, ["y", "n", "-"]),
        ({"private": "y", "unpriv": "n", "chroot": "y"}, ["y", "n", "y"]),
        ({"wakeup": 60}, ["-", "-", "-", "60"]),
        ({"wakeup": "1000?"}, ["-", "-", "-", "1000?"]),
        ({"wakeup": "300"}, ["-", "-", "-", "300"]),
        ({"wakeup": 0, "maxproc": 0}, ["-", "-", "-", "0", "0"]),
        ({"maxproc": "100"}, ["-", "-", "-", "-", "100"]),
    ],
)
def test_master_cf_fields(pf: ModuleType, fields: dict[str, Any], columns: list[str]) -> None:
    line = pf.postfix_master_cf([svc(**fields)]).splitlines()[-1]
    assert line.split()[2 : 2 + len(columns)] == columns


def test_master_cf_options_one_per_line(pf: ModuleType) -> None:
    body = pf.postfix_master_cf(
        [
            svc(
                options={
                    "syslog_name": "postfix/$service_name",
                    "smtpd_tls_wrappermode": True,
                    "smtpd_sasl_auth_enable": False,
                    "smtpd_client_connection_count_limit": 10,
                    "smtpd_recipient_restrictions": ["permit_mynetworks", "reject"],
                    "smtpd_helo_restrictions": [],
                    "smtpd_banner": "$myhostname ESMTP lists",
                    "smtpd_milters": "{inet:127.0.0.1:11332}",
                }
            )
        ]
    )
    assert body.splitlines()[4:] == [
        "  -o syslog_name=postfix/$service_name",
        "  -o smtpd_tls_wrappermode=yes",
        "  -o smtpd_sasl_auth_enable=no",
        "  -o smtpd_client_connection_count_limit=10",
        "  -o smtpd_recipient_restrictions=permit_mynetworks,reject",
        "  -o smtpd_helo_restrictions=",
        "  -o { smtpd_banner = $myhostname ESMTP lists }",
        "  -o { smtpd_milters = {inet:127.0.0.1:11332} }",
    ]


def test_master_cf_list_item_with_space_uses_long_form(pf: ModuleType) -> None:
    body = pf.postfix_master_cf(
        [svc(options={"x_restrictions": ["reject_rbl_client zen.example.test", "permit"]})]
    )
    assert body.splitlines()[-1] == "  -o { x_restrictions = reject_rbl_client zen.example.test,permit }"


def test_master_cf_args_after_options(pf: ModuleType) -> None:
    service = svc(
        name="mailman",
        command="pipe",
        unpriv="n",
        chroot="n",
        options={"syslog_name": "postfix/mailman"},
        args=["flags=FRX", "user=list", "argv=/usr/bin/x", "${nexthop}", "a b", "{x}"],
    )
    assert pf.postfix_master_cf([service]).splitlines()[-2:] == [
        "  -o syslog_name=postfix/mailman",
        "  flags=FRX user=list argv=/usr/bin/x ${nexthop} { a b } { {x} }",
    ]


def test_master_cf_comment_lines(pf: ModuleType) -> None:
    body = pf.postfix_master_cf([svc(comment="Mailman's LMTP\n\nsecond  "), SMTP])
    assert body.splitlines()[3:7] == ["# Mailman's LMTP", "#", "# second", body.splitlines()[6]]
    assert body.splitlines()[6].startswith("foo ")


def test_master_cf_absent_entries_are_not_rendered(pf: ModuleType) -> None:
    body = pf.postfix_master_cf([SMTP, svc(state="absent", command=None), svc(state="absent")])
    assert "foo" not in body and "smtpd" in body


def test_master_cf_absent_entry_needs_its_key(pf: ModuleType) -> None:
    message = (
        "postfix_master_cf: instance '-', service 'foo' (item 0): type must be one of "
        "inet|unix|unix-dgram|fifo|pass, got None"
    )
    with raises(message):
        pf.postfix_master_cf([{"name": "foo", "state": "absent"}])
    with raises("postfix_master_cf: instance '-', service item 0: name must be a non-empty string, got None"):
        pf.postfix_master_cf([{"type": "unix", "state": "absent"}])


def test_master_cf_keeps_order(pf: ModuleType) -> None:
    names = ["zeta", "alpha", "mid"]
    body = pf.postfix_master_cf([svc(name=n) for n in names])
    assert [line.split()[0] for line in body.splitlines()[3:]] == names


def test_check_services_returns_input_unchanged(pf: ModuleType) -> None:
    data = [svc(private=True, maxproc="7")]
    assert pf.postfix_check_services(data, "postfix-out") is data
    assert data == [svc(private=True, maxproc="7")]


@pytest.mark.parametrize(
    "name",
    [
        "25",
        "smtp",
        "submission",
        "127.0.0.1:10025",
        "127.0.0.1:smtp",
        "[::1]:25",
        "mx.example.test:25",
        "*:25",
    ],
)
def test_inet_names_accepted(pf: ModuleType, name: str) -> None:
    pf.postfix_check_services([{"name": name, "type": "inet", "command": "smtpd"}])


@pytest.mark.parametrize("stype", ["unix", "unix-dgram", "fifo", "pass"])
def test_local_types_accepted(pf: ModuleType, stype: str) -> None:
    assert pf.postfix_master_cf([svc(type=stype)]).splitlines()[-1].split()[1] == stype


# ------------------------------------------------------------------------------------------------
# Error paths of the service checks (message text asserted)

P = "postfix_master_cf: instance 'postfix-out', service 'foo/unix': "


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        (
            {"type": "tcp"},
            "service 'foo' (item 0): type must be one of inet|unix|unix-dgram|fifo|pass, got 'tcp'",
        ),
        ({"private": "yes"}, "service 'foo/unix': private must be 'y', 'n', '-' or a boolean, got 'yes'"),
        ({"unpriv": 1}, "service 'foo/unix': unpriv must be 'y', 'n', '-' or a boolean, got 1"),
        ({"chroot": None}, "service 'foo/unix': chroot must be 'y', 'n', '-' or a boolean, got None"),
        (
            {"wakeup": "60s"},
            "service 'foo/unix': wakeup must be an integer >= 0, an integer followed by '?', or '-', "
            "got '60s'",
        ),
        (
            {"wakeup": True},
            "service 'foo/unix': wakeup must be an integer >= 0, an integer followed by '?', or '-', "
            "got True",
        ),
        (
            {"wakeup": -1},
            "service 'foo/unix': wakeup must be an integer >= 0, an integer followed by '?', or '-', got -1",
        ),
        ({"maxproc": "many"}, "service 'foo/unix': maxproc must be an integer or '-', got 'many'"),
        ({"maxproc": -2}, "service 'foo/unix': maxproc must be an integer or '-', got -2"),
        ({"maxproc": 1.5}, "service 'foo/unix': maxproc must be an integer or '-', got 1.5"),
        ({"maxproc": False}, "service 'foo/unix': maxproc must be an integer or '-', got False"),
        (
            {"command": None},
            "service 'foo/unix': command is required (the program in Postfix's daemon directory, e.g. "
            "'smtpd')",
        ),
        ({"command": "smtpd -v"}, "service 'foo/unix': command must not contain whitespace, got 'smtpd -v'"),
        ({"command": "-v"}, "service 'foo/unix': command must be a program name, got '-v'"),
        ({"command": ["smtpd"]}, "service 'foo/unix': command must be a string, got list ['smtpd']"),
        ({"args": "flags=R"}, "service 'foo/unix': args must be a list of strings, got 'flags=R'"),
        ({"args": [""]}, "service 'foo/unix': args[0] must not be empty"),
        ({"args": ["a", None]}, "service 'foo/unix': args[1] must be a string, got NoneType None"),
        ({"args": ["a\nb"]}, "service 'foo/unix': args[0] must be on one line (no newline), got 'a\\nb'"),
        ({"args": [" a"]}, "service 'foo/unix': args[0] must not start or end with whitespace, got ' a'"),
        ({"args": ["a{"]}, "service 'foo/unix': args[0] must have balanced '{' and '}', got 'a{'"),
        (
            {"args": ["-v", "-o", "x=y"]},
            "service 'foo/unix': args[1]: '-o' here would be read as an override; use options instead",
        ),
        (
            {"args": ["#x"]},
            "service 'foo/unix': args[0] must not start with '#' (the line would be a comment), got '#x'",
        ),
        (
            {"options": ["x=y"]},
            "service 'foo/unix': options must be a mapping of parameter name to value, got ['x=y']",
        ),
        (
            {"options": {"Bad-Name": "x"}},
            "service 'foo/unix': options: parameter name must match [A-Za-z0-9_]+, got 'Bad-Name'",
        ),
        (
            {"options": {"content_filter": ""}},
            "service 'foo/unix': options.content_filter: value must not be empty (write [] for an explicitly "
            "empty value, or null to drop the override)",
        ),
        (
            {"options": {"x": None}},
            "service 'foo/unix': options.x: value is null (null only removes an option while merging layers)",
        ),
        (
            {"options": {"x": 1.5}},
            "service 'foo/unix': options.x must be a string, integer, boolean or list, got 1.5",
        ),
        (
            {"options": {"x": {"a": 1}}},
            "service 'foo/unix': options.x must be a string, integer, boolean or list, got {'a': 1}",
        ),
        (
            {"options": {"x": "a\nb"}},
            "service 'foo/unix': options.x must be on one line (no newline), got 'a\\nb'",
        ),
        (
            {"options": {"x": "a "}},
            "service 'foo/unix': options.x must not start or end with whitespace, got 'a '",
        ),
        ({"options": {"x": "a}"}}, "service 'foo/unix': options.x must have balanced '{' and '}', got 'a}'"),
        ({"options": {"x": ["a", ""]}}, "service 'foo/unix': options.x[1] must not be empty"),
        (
            {"options": {"x": ["a", ["b"]]}},
            "service 'foo/unix': options.x[1] must be a string, number or boolean, got ['b']",
        ),
        ({"comment": 5}, "service 'foo/unix': comment must be a string, got 5"),
        ({"comment": "a\rb"}, "service 'foo/unix': comment must not contain carriage returns, got 'a\\rb'"),
        ({"state": "gone"}, "service 'foo/unix': state must be 'present' or 'absent', got 'gone'"),
        (
            {"maxprocs": 1, "extra": 2},
            "service 'foo/unix': unknown field(s) extra, maxprocs; expected name, type, "
            "private, unpriv, chroot, wakeup, maxproc, command, args, options, comment, state",
        ),
        ({"name": ""}, "service item 0: name must be a non-empty string, got ''"),
        ({"name": 25}, "service item 0: name must be a non-empty string, got 25"),
        (
            {"name": "-foo"},
            "service '-foo/unix': name of a unix service must be letters, digits, '.', '_' and '-' "
            "(not starting with '.' or '-'), got '-foo'",
        ),
    ],
)
def test_service_errors(pf: ModuleType, fields: dict[str, Any], message: str) -> None:
    with raises(f"postfix_master_cf: instance 'postfix-out', {message}"):
        pf.postfix_master_cf([svc(**fields)], "postfix-out")


@pytest.mark.parametrize(
    "name",
    [
        "0",
        "65536",
        "127.0.0.1:",
        "::1:25",
        "[::1]25",
        "[1.2.3.4]:25",
        "999.1.1.1:25",
        "host name:25",
        "a:b:c",
    ],
)
def test_inet_name_errors(pf: ModuleType, name: str) -> None:
    message = (
        f"postfix_check_services: instance '-', service '{name}/inet': name of an inet service must "
        f"be a port "
        f"('2525'), a service name ('smtp'), or 'host:port' ('127.0.0.1:10025', '[::1]:25'), got {name!r}"
    )
    with raises(message):
        pf.postfix_check_services([{"name": name, "type": "inet", "command": "smtpd"}])


def test_service_not_a_mapping(pf: ModuleType) -> None:
    with raises(
        "postfix_check_services: instance '-', service item 1: a service must be a mapping, got 'smtp'"
    ):
        pf.postfix_check_services([SMTP, "smtp"])


def test_services_not_a_list(pf: ModuleType) -> None:
    with raises("postfix_master_cf: instance '-': services must be a list of service mappings, got dict"):
        pf.postfix_master_cf(SMTP)


def test_duplicate_service_type_pair(pf: ModuleType) -> None:
    message = (
        "postfix_check_services: instance 'postfix-out', service 'smtp/inet': service/type pair is "
        "defined twice "
        "(items 0 and 2); service/type pairs must be unique"
    )
    with raises(message):
        pf.postfix_check_services([SMTP, {**SMTP, "type": "unix"}, SMTP], "postfix-out")


@pytest.mark.parametrize("instance", ["postfix-out", "-", "postfix-a.b_c-1"])
def test_instance_names_accepted(pf: ModuleType, instance: str) -> None:
    pf.postfix_check_services([SMTP], instance)


@pytest.mark.parametrize("instance", ["out", "postfix-", "postfix", "postfix-a b", "", None, 3])
@pytest.mark.parametrize(
    "filter_name",
    [
        "postfix_check_services",
        "postfix_master_cf",
        "postfix_main_cf",
        "postfix_merge_services",
        "postfix_merge_params",
    ],
)
def test_instance_name_errors(pf: ModuleType, instance: Any, filter_name: str) -> None:
    message = (
        f"{filter_name}: instance {instance!r}: instance name must be '-' or 'postfix-<name>' "
        f"(letters, digits, '.', '_', '-'), got {instance!r}"
    )
    with raises(message):
        getattr(pf, filter_name)([], instance)


# ------------------------------------------------------------------------------------------------
# Merging services


def test_merge_later_layer_wins_field_by_field(pf: ModuleType) -> None:
    layers = [
        [SMTP, svc(name="qmgr", wakeup=300, maxproc=1)],
        [{"name": "smtp", "type": "inet", "maxproc": 50}],
    ]
    merged = pf.postfix_merge_services(layers, "postfix-out")
    assert merged[0] == canonical(name="smtp", type="inet", private="n", chroot="y", maxproc=50)
    assert merged[1] == canonical(name="qmgr", wakeup=300, maxproc=1)


def test_merge_options_key_by_key_and_null_removes(pf: ModuleType) -> None:
    layers = [
        [svc(options={"a": "1", "b": "2", "c": "3"})],
        [{"name": "foo", "type": "unix", "options": {"b": None, "c": "three", "d": True}}],
        [{"name": "foo", "type": "unix", "options": {"zz": None}}],
    ]
    assert pf.postfix_merge_services(layers)[0]["options"] == {"a": "1", "c": "three", "d": True}


def test_merge_options_new_entry_drops_nulls(pf: ModuleType) -> None:
    assert pf.postfix_merge_services([[svc(options={"a": None, "b": "x"})]])[0]["options"] == {"b": "x"}


def test_merge_args_and_comment_replaced(pf: ModuleType) -> None:
    layers = [
        [svc(args=["a", "b"], comment="one")],
        [{"name": "foo", "type": "unix", "args": ["c"], "comment": "two"}],
    ]
    merged = pf.postfix_merge_services(layers)[0]
    assert (merged["args"], merged["comment"]) == (["c"], "two")


def test_merge_absent_removes_and_later_layer_adds_again(pf: ModuleType) -> None:
    layers = [
        [svc(name="a"), svc(name="b", maxproc=5), svc(name="c")],
        [{"name": "b", "type": "unix", "state": "absent"}],
    ]
    assert [s["name"] for s in pf.postfix_merge_services(layers)] == ["a", "c"]
    layers.append([svc(name="b", command="qmgr")])
    merged = pf.postfix_merge_services(layers)
    # b is back in its first-seen place, built afresh (maxproc 5 of the removed entry is gone)
    assert [s["name"] for s in merged] == ["a", "b", "c"]
    assert merged[1] == canonical(name="b", command="qmgr")


def test_merge_absent_of_unknown_entry_is_noop(pf: ModuleType) -> None:
    assert pf.postfix_merge_services([[svc()], [{"name": "x", "type": "unix", "state": "absent"}]]) == [
        canonical()
    ]


def test_merge_order_first_seen_new_appended(pf: ModuleType) -> None:
    layers = [[svc(name="a"), svc(name="b")], [svc(name="c"), {"name": "a", "type": "unix", "maxproc": 1}]]
    assert [s["name"] for s in pf.postfix_merge_services(layers)] == ["a", "b", "c"]


def test_merge_key_includes_type(pf: ModuleType) -> None:
    merged = pf.postfix_merge_services([[SMTP, svc(name="smtp", command="smtp")]])
    assert [(s["name"], s["type"]) for s in merged] == [("smtp", "inet"), ("smtp", "unix")]


def test_merge_none_and_empty_layers(pf: ModuleType) -> None:
    assert pf.postfix_merge_services([None, [], [svc()], None]) == [canonical()]
    assert pf.postfix_merge_services(None) == []


def test_merge_result_is_defaulted_and_normalized(pf: ModuleType) -> None:
    merged = pf.postfix_merge_services(
        [[svc(private=True, unpriv=False, maxproc="3", wakeup="60", state="present")]]
    )
    assert merged == [canonical(private="y", unpriv="n", maxproc=3, wakeup=60)]


def test_merge_does_not_modify_input(pf: ModuleType) -> None:
    base = [svc(options={"a": "1"})]
    pf.postfix_merge_services([base, [{"name": "foo", "type": "unix", "options": {"a": None}}]])
    assert base == [svc(options={"a": "1"})]


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            {"a": 1},
            "postfix_merge_services: instance 'postfix-out': layers must be a list of lists, got dict",
        ),
        (
            [[svc()], "x"],
            "postfix_merge_services: layers[1]: instance 'postfix-out': must be a list, got str",
        ),
        (
            [[5]],
            "postfix_merge_services: layers[0][0]: instance 'postfix-out': an entry must be a mapping, got 5",
        ),
        (
            [[{"type": "unix"}]],
            "postfix_merge_services: layers[0][0]: instance 'postfix-out', service: name is required to "
            "merge "
            "services (key: name and type), got None",
        ),
        (
            [[{"name": "foo"}]],
            "postfix_merge_services: layers[0][0]: instance 'postfix-out', service 'foo': type must be one "
            "of "
            "inet|unix|unix-dgram|fifo|pass, got None",
        ),
        (
            [[svc(state="deleted")]],
            "postfix_merge_services: layers[0][0]: instance 'postfix-out': state must be 'present' or "
            "'absent', "
            "got 'deleted'",
        ),
        (
            [[svc(), svc(maxproc=2)]],
            "postfix_merge_services: layers[0][1]: instance 'postfix-out': names the same entry as "
            "layers[0][0]: "
            "one entry per name in a layer (merge the two, or move one to a later layer)",
        ),
        (
            [[{"name": "foo", "type": "unix", "maxproc": 2}]],
            "postfix_merge_services: instance 'postfix-out', service 'foo/unix': command is required (the "
            "program in Postfix's daemon directory, e.g. 'smtpd')",
        ),
        (
            [[svc()], [{"name": "foo", "type": "unix", "maxproc": "x"}]],
            "postfix_merge_services: instance 'postfix-out', service 'foo/unix': maxproc must be an integer "
            "or "
            "'-', got 'x'",
        ),
    ],
)
def test_merge_services_errors(pf: ModuleType, layers: Any, message: str) -> None:
    with raises(message):
        pf.postfix_merge_services(layers, "postfix-out")


# ------------------------------------------------------------------------------------------------
# main.cf


def test_main_cf_value_types(pf: ModuleType) -> None:
    params = [
        {"name": "myhostname", "value": "mx1.example.test"},
        {"name": "smtpd_proxy_timeout", "value": 100},
        {"name": "biff", "value": False},
        {"name": "smtpd_use_tls", "value": True},
        {"name": "mydestination", "value": []},
        {"name": "mynetworks", "value": ["127.0.0.0/8", "[::1]/128"]},
        {"name": "relayhost", "value": ""},
        {"name": "maillog_file", "value": "/var/log/postfix.log", "state": "present"},
        {"name": "smtpd_milters", "value": "inet:127.0.0.1:11332", "state": "absent"},
    ]
    assert pf.postfix_main_cf(params, "postfix-out").splitlines() == [
        "myhostname = mx1.example.test",
        "smtpd_proxy_timeout = 100",
        "biff = no",
        "smtpd_use_tls = yes",
        "mydestination =",
        "mynetworks = 127.0.0.0/8, [::1]/128",
        "relayhost =",
        "maillog_file = /var/log/postfix.log",
    ]


def test_main_cf_mixed_case_parameter_names(pf: ModuleType) -> None:
    # Postfix has upper-case letters in a few names (smtpd_tls_CAfile, smtp_tls_CApath).
    params = [{"name": "smtp_tls_CApath", "value": "/etc/ssl/certs"}]
    assert pf.postfix_main_cf(params, "-").splitlines() == ["smtp_tls_CApath = /etc/ssl/certs"]


def test_main_cf_long_list_one_item_per_line(pf: ModuleType) -> None:
    items = [
        "permit_mynetworks",
        "reject_unauth_destination",
        "check_policy_service unix:private/policy",
        True,
    ]
    assert pf.postfix_main_cf([{"name": "smtpd_recipient_restrictions", "value": items}]).splitlines() == [
        "smtpd_recipient_restrictions =",
        "    permit_mynetworks,",
        "    reject_unauth_destination,",
        "    check_policy_service unix:private/policy,",
        "    yes",
    ]


def test_main_cf_long_single_item_stays_on_one_line(pf: ModuleType) -> None:
    value = ["x" * 100]
    assert pf.postfix_main_cf([{"name": "a", "value": value}]) == f"a = {'x' * 100}\n"


def test_main_cf_comments(pf: ModuleType) -> None:
    params = [{"name": "a", "value": 1}, {"name": "b", "value": 2, "comment": "why b\nmore"}]
    assert pf.postfix_main_cf(params) == "a = 1\n\n# why b\n# more\nb = 2\n"


@pytest.mark.parametrize(
    ("param", "message"),
    [
        (
            {"name": "Bad-name", "value": 1},
            "parameter 'Bad-name': name must match [A-Za-z0-9_]+, got 'Bad-name'",
        ),
        ({"value": 1}, "parameter item 0: name must match [A-Za-z0-9_]+, got None"),
        ({"name": "a"}, "parameter 'a': value is required"),
        (
            {"name": "a", "value": None},
            "parameter 'a': value is null; give a value, or state: absent to remove the parameter",
        ),
        (
            {"name": "a", "value": 1.5},
            "parameter 'a': value must be a string, integer, boolean or list, got 1.5",
        ),
        (
            {"name": "a", "value": {"b": 1}},
            "parameter 'a': value must be a string, integer, boolean or list, got {'b': 1}",
        ),
        (
            {"name": "a", "value": "x\ny"},
            "parameter 'a': value must be on one line (no newline), got 'x\\ny'",
        ),
        (
            {"name": "a", "value": " x"},
            "parameter 'a': value must not start or end with whitespace, got ' x'",
        ),
        (
            {"name": "a", "value": ["x", None]},
            "parameter 'a': value[1] must be a string, integer or boolean, got None",
        ),
        (
            {"name": "a", "value": ["x", ""]},
            "parameter 'a': value[1] must be non-empty, on one line, without leading or "
            "trailing whitespace, got ''",
        ),
        (
            {"name": "a", "value": 1, "state": "on"},
            "parameter 'a': state must be 'present' or 'absent', got 'on'",
        ),
        ({"name": "a", "value": 1, "comment": ["x"]}, "parameter 'a': comment must be a string, got ['x']"),
        (
            {"name": "a", "value": 1, "values": 2},
            "parameter 'a': unknown field(s) values; expected name, value, comment, state",
        ),
    ],
)
def test_main_cf_errors(pf: ModuleType, param: dict[str, Any], message: str) -> None:
    with raises(f"postfix_main_cf: instance 'postfix-out', {message}"):
        pf.postfix_main_cf([param], "postfix-out")


def test_main_cf_param_not_a_mapping_and_duplicates(pf: ModuleType) -> None:
    with raises("postfix_main_cf: instance '-', parameter item 0: a parameter must be a mapping, got 'a=1'"):
        pf.postfix_main_cf(["a=1"])
    with raises("postfix_main_cf: instance '-': parameters must be a list of parameter mappings, got str"):
        pf.postfix_main_cf("a = 1")
    message = (
        "postfix_main_cf: instance '-', parameter 'a': parameter is defined twice (items 0 and 1); "
        "names must be unique"
    )
    with raises(message):
        pf.postfix_main_cf([{"name": "a", "value": 1}, {"name": "a", "value": 2}])


# ------------------------------------------------------------------------------------------------
# Merging parameters


def test_merge_params(pf: ModuleType) -> None:
    layers = [
        [{"name": "a", "value": 1}, {"name": "b", "value": ["x"]}, {"name": "c", "value": "c"}],
        None,
        [{"name": "b", "value": ["y", "z"]}, {"name": "c", "state": "absent"}, {"name": "d", "value": True}],
        [{"name": "a", "comment": "only the comment changes"}],
    ]
    assert pf.postfix_merge_params(layers) == [
        {"name": "a", "value": 1, "comment": "only the comment changes"},
        {"name": "b", "value": ["y", "z"], "comment": ""},
        {"name": "d", "value": True, "comment": ""},
    ]


def test_merge_params_absent_with_null_value_is_fine(pf: ModuleType) -> None:
    layers = [[{"name": "a", "value": 1}], [{"name": "a", "value": None, "state": "absent"}]]
    assert pf.postfix_merge_params(layers) == []


@pytest.mark.parametrize(
    ("layers", "message"),
    [
        (
            [[{"name": "a", "value": 1}], [{"name": "a", "value": None}]],
            "layers[1][0]: instance 'postfix-out', parameter 'a': value is null; give a value, or state: "
            "absent "
            "to remove the parameter",
        ),
        ([[{"name": "a", "comment": "x"}]], "instance 'postfix-out', parameter 'a': value is required"),
        (
            [[{"name": "A-b", "value": 1}]],
            "layers[0][0]: instance 'postfix-out', parameter: name must match [A-Za-z0-9_]+, got 'A-b'",
        ),
        ([["a"]], "layers[0][0]: instance 'postfix-out': an entry must be a mapping, got 'a'"),
        (
            [[{"name": "a", "value": 1, "state": "x"}]],
            "layers[0][0]: instance 'postfix-out': state must be 'present' or 'absent', got 'x'",
        ),
    ],
)
def test_merge_params_errors(pf: ModuleType, layers: Any, message: str) -> None:
    with raises(f"postfix_merge_params: {message}"):
        pf.postfix_merge_params(layers, "postfix-out")


# ------------------------------------------------------------------------------------------------
# Instances


def role_inputs(**changes: Any) -> dict[str, Any]:
    """A small but complete input of postfix_instances, as roles/postfix/vars/main.yml builds it."""
    base: dict[str, Any] = {
        "__postfix_base_mastercf": [SMTP, {"name": "pickup", "type": "unix", "command": "pickup"}],
        "postfix__maincf": [
            {"name": "compatibility_level", "value": "3.6"},
            {"name": "biff", "value": False},
        ],
        "postfix__mastercf": [],
        "postfix__profiles": {
            "inbound_scanning": {
                "maincf": [{"name": "smtpd_helo_required", "value": True}],
                "mastercf": [{"name": "smtp", "type": "inet", "maxproc": 1, "command": "postscreen"}],
            },
            "loopback_unchecked": {
                "maincf": [
                    {"name": "inet_interfaces", "value": "127.0.0.1"},
                    {"name": "smtpd_milters", "value": ""},
                ],
                "mastercf": [],
            },
        },
        "postfix__custom_profiles": {},
        "postfix__dependent_profiles": {},
        "postfix__instances": [{"name": "-"}],
        "postfix__dependent_instances": [],
        "postfix__group_instances": [],
        "postfix__host_instances": [],
        "postfix__myhostname": "mx1.example.test",
        "postfix__instance_group": "mta",
        "postfix__tls_self_signed": True,
        "postfix__staging_dir": "/var/lib/mailstack/postfix",
    }
    base.update(changes)
    return base


def params_of(instance: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p["value"] for p in instance["maincf"]}


def test_instances_ready_to_render(pf: ModuleType) -> None:
    primary, out = pf.postfix_instances(
        role_inputs(
            postfix__instances=[
                {"name": "-", "profile": "inbound_scanning", "mynetworks": ["127.0.0.0/8"]},
                {
                    "name": "postfix-out",
                    "profile": "loopback_unchecked",
                    "port": 10025,
                    "relay_next_hops": ["[r1]:25", "[r2]:25"],
                },
            ]
        )
    )
    assert {k: v for k, v in primary.items() if k not in ("maincf", "services", "main_cf", "master_cf")} == {
        "name": "-",
        "state": "present",
        "profile": "inbound_scanning",
        "config_directory": "/etc/postfix",
        "queue_directory": "/var/spool/postfix",
        "data_directory": "/var/lib/postfix",
        "myhostname": "mx1.example.test",
        "tls_cert_file": "/etc/postfix/selfsigned-cert.pem",
        "tls_key_file": "/etc/postfix/selfsigned-key.pem",
        "staging": "/var/lib/mailstack/postfix/postfix",
        "unit": "postfix@-",
        "self_signed": True,
        "defined_in": ["postfix__instances[0]"],
        "directories": [{"path": "/var/lib/mailstack/postfix/postfix", "owner": "root", "mode": "0700"}],
        "inet_interfaces": "all",
    }
    assert list(params_of(primary)) == [
        "compatibility_level",
        "biff",
        "smtpd_helo_required",
        "multi_instance_wrapper",
        "multi_instance_directories",
        "multi_instance_enable",
        "myhostname",
        "mynetworks",
        "smtpd_tls_cert_file",
        "smtpd_tls_key_file",
    ]
    assert params_of(primary)["multi_instance_directories"] == ["/etc/postfix-out"]
    assert primary["main_cf"] == pf.postfix_main_cf(primary["maincf"], "-")
    assert primary["master_cf"] == pf.postfix_master_cf(primary["services"], "-")
    assert [(s["name"], s["command"], s["maxproc"]) for s in primary["services"]] == [
        ("smtp", "postscreen", 1),
        ("pickup", "pickup", "-"),
    ]
    assert out["directories"] == [
        {"path": "/var/lib/mailstack/postfix/postfix-out", "owner": "root", "mode": "0700"},
        {"path": "/etc/postfix-out", "owner": "root", "mode": "0755"},
        {"path": "/var/spool/postfix-out", "owner": "root", "mode": "0755"},
        {"path": "/var/lib/postfix-out", "owner": "postfix", "mode": "0700"},
    ]
    assert out["inet_interfaces"] == "127.0.0.1"
    assert [s["name"] for s in out["services"]] == ["10025", "pickup"]  # the instance's port
    got = params_of(out)
    assert got["syslog_name"] == got["multi_instance_name"] == "postfix-out"
    assert got["multi_instance_group"] == "mta"
    assert got["queue_directory"] == "/var/spool/postfix-out"
    assert got["sender_dependent_default_transport_maps"] == "randmap:{smtp:[r1]:25, smtp:[r2]:25}"
    assert got["smtp_fallback_relay"] == ["[r1]:25", "[r2]:25"]


def test_instances_layer_order(pf: ModuleType) -> None:
    """Every layer sets `x` (later wins) and adds its own parameter (first-seen order)."""

    def layer(name: str) -> list[dict[str, Any]]:
        return [{"name": "x", "value": name}, {"name": f"only_{name}", "value": 1}]

    def instance_layer(name: str) -> list[dict[str, Any]]:
        return [{"name": "-", "maincf": layer(name), "profile": "p"}]

    order = [
        "postfix__maincf",
        "profile",
        "dependent_a",
        "dependent_b",
        "postfix__instances",
        "postfix__dependent_instances",
        "postfix__group_instances",
        "postfix__host_instances",
    ]
    result = pf.postfix_instances(
        role_inputs(
            postfix__maincf=layer("postfix__maincf"),
            postfix__profiles={"p": {"maincf": layer("profile")}},
            postfix__dependent_profiles=[
                {"p": {"maincf": layer("dependent_a")}},
                {"p": {"maincf": layer("dependent_b")}},
            ],
            **{name: instance_layer(name) for name in order[4:]},
        )
    )
    got = params_of(result[0])
    assert got["x"] == "postfix__host_instances"
    only = [name.removeprefix("only_") for name in got if name.startswith("only_")]
    assert only == order


def test_instances_custom_profile_replaces_a_role_profile_whole(pf: ModuleType) -> None:
    inputs = role_inputs(
        postfix__custom_profiles={"inbound_scanning": {"maincf": [{"name": "custom", "value": "yes"}]}},
        postfix__instances=[{"name": "-", "profile": "inbound_scanning"}],
    )
    got = params_of(pf.postfix_instances(inputs)[0])
    assert got["custom"] == "yes" and "smtpd_helo_required" not in got


def test_instances_computed_parameters_win_but_keys_follow_the_layers(pf: ModuleType) -> None:
    inputs = role_inputs(
        postfix__instances=[{"name": "-", "myhostname": "topology.example.test"}],
        postfix__host_instances=[
            {
                "name": "-",
                "myhostname": "host.example.test",
                "maincf": [{"name": "myhostname", "value": "no"}],
            }
        ],
    )
    (primary,) = pf.postfix_instances(inputs)
    assert primary["myhostname"] == params_of(primary)["myhostname"] == "host.example.test"


def test_instances_absent_and_afresh(pf: ModuleType) -> None:
    inputs = role_inputs(
        postfix__instances=[
            {"name": "-"},
            {"name": "postfix-old", "profile": "loopback_unchecked", "port": 10025},
        ],
        postfix__dependent_instances=[{"name": "postfix-x", "mastercf": [svc()], "port": 2525}],
        postfix__group_instances=[{"name": "postfix-x", "state": "absent"}],
        postfix__host_instances=[
            {"name": "postfix-old", "state": "absent"},
            {"name": "postfix-x", "port": 2526},
        ],
    )
    primary, old, new = pf.postfix_instances(inputs)
    assert params_of(primary)["multi_instance_directories"] == ["/etc/postfix-x"]
    assert old["state"] == "absent"
    assert old["paths"] == [
        "/etc/postfix-old",
        "/var/spool/postfix-old",
        "/var/lib/postfix-old",
        "/var/lib/mailstack/postfix/postfix-old",
    ]
    assert (old["maincf"], old["services"], old["main_cf"], old["master_cf"]) == ([], [], "", "")
    # postfix-x starts afresh after its state: absent: its foo service is gone.
    assert [s["name"] for s in new["services"]] == ["2526", "pickup"]
    assert new["defined_in"] == ["postfix__host_instances[1]"]  # since its last state: absent


def test_instances_own_certificate(pf: ModuleType) -> None:
    inputs = role_inputs(
        postfix__instances=[{"name": "-", "tls_cert_file": "/c.pem", "tls_key_file": "/k.pem"}]
    )
    (primary,) = pf.postfix_instances(inputs)
    assert (primary["self_signed"], primary["tls_cert_file"], primary["tls_key_file"]) == (
        False,
        "/c.pem",
        "/k.pem",
    )
    assert params_of(primary)["smtpd_tls_key_file"] == "/k.pem"
    (primary,) = pf.postfix_instances(role_inputs(postfix__tls_self_signed=False))
    assert "smtpd_tls_cert_file" not in params_of(primary) and primary["tls_cert_file"] == ""


# Extendable list values: two roles each add a milter to one instance.

RSPAMD = {"inbound_scanning": {"maincf": [{"name": "smtpd_milters", "items": ["inet:127.0.0.1:11332"]}]}}
SIGNER = {"inbound_scanning": {"maincf": [{"name": "smtpd_milters", "items": ["inet:127.0.0.1:8891"]}]}}
SCANNING = [{"name": "-", "profile": "inbound_scanning"}]


def test_two_roles_add_a_milter_each(pf: ModuleType) -> None:
    (primary,) = pf.postfix_instances(
        role_inputs(postfix__instances=SCANNING, postfix__dependent_profiles=[RSPAMD, SIGNER])
    )
    assert params_of(primary)["smtpd_milters"] == ["inet:127.0.0.1:11332", "inet:127.0.0.1:8891"]
    assert "smtpd_milters = inet:127.0.0.1:11332, inet:127.0.0.1:8891\n" in primary["main_cf"]


def test_a_milter_from_a_profile_and_one_from_an_instance_layer(pf: ModuleType) -> None:
    signer_instance = [{"name": "-", "maincf": SIGNER["inbound_scanning"]["maincf"]}]
    (primary,) = pf.postfix_instances(
        role_inputs(
            postfix__instances=SCANNING,
            postfix__dependent_profiles=RSPAMD,
            postfix__dependent_instances=signer_instance,
        )
    )
    assert "smtpd_milters = inet:127.0.0.1:11332, inet:127.0.0.1:8891\n" in primary["main_cf"]


@pytest.mark.parametrize(
    ("host_maincf", "expected"),
    [
        # Adding one that is there already changes nothing.
        (
            [{"name": "smtpd_milters", "items": ["inet:127.0.0.1:8891"]}],
            ["inet:127.0.0.1:11332", "inet:127.0.0.1:8891"],
        ),
        # Remove one.
        (
            [{"name": "smtpd_milters", "items": [{"name": "inet:127.0.0.1:11332", "state": "absent"}]}],
            ["inet:127.0.0.1:8891"],
        ),
        # Replace the whole value.
        ([{"name": "smtpd_milters", "value": ["unix:/run/m.sock"]}], ["unix:/run/m.sock"]),
        # Replace, then add.
        ([{"name": "smtpd_milters", "value": [], "items": ["unix:/run/m.sock"]}], ["unix:/run/m.sock"]),
    ],
)
def test_items_add_remove_replace(
    pf: ModuleType, host_maincf: list[dict[str, Any]], expected: list[str]
) -> None:
    (primary,) = pf.postfix_instances(
        role_inputs(
            postfix__instances=SCANNING,
            postfix__dependent_profiles=[RSPAMD, SIGNER],
            postfix__host_instances=[{"name": "-", "maincf": host_maincf}],
        )
    )
    assert params_of(primary)["smtpd_milters"] == expected


def test_items_extend_an_empty_string_value(pf: ModuleType) -> None:
    """loopback_unchecked says smtpd_milters = '' (no milters): items start from an empty list."""
    inputs = role_inputs(
        postfix__instances=[
            {
                "name": "-",
                "profile": "loopback_unchecked",
                "port": 10025,
                "maincf": [{"name": "smtpd_milters", "items": ["inet:m:1"]}],
            }
        ]
    )
    assert params_of(pf.postfix_instances(inputs)[0])["smtpd_milters"] == ["inet:m:1"]


def test_merge_params_items(pf: ModuleType) -> None:
    layers = [
        [{"name": "a", "value": ["x", "y"]}, {"name": "b", "items": ["1"]}],
        [{"name": "a", "items": [{"name": "x", "state": "absent"}, "z", "y"]}],
    ]
    assert pf.postfix_merge_params(layers) == [
        {"name": "a", "value": ["y", "z"], "comment": ""},
        {"name": "b", "value": ["1"], "comment": ""},
    ]
    with raises(
        "postfix_merge_params: layers[1][0]: instance '-', parameter 'a': items extend a list value, but the "
        "value so far is 'x'; write that value as a list"
    ):
        pf.postfix_merge_params([[{"name": "a", "value": "x"}], [{"name": "a", "items": ["y"]}]])


PRE = "postfix_instances: "


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {
                "postfix__group_instances": [{"name": "-"}],
                "postfix__host_instances": [
                    {"name": "postfix-out", "port": 2525},
                    {
                        "name": "-",
                        "maincf": [{"name": n, "value": 1} for n in ("a", "b", "c")]
                        + [{"name": "relayhost", "value": None}],
                    },
                ],
            },
            "postfix__host_instances[1].maincf[3]: instance '-', parameter 'relayhost': value is null; "
            "give a value, or state: absent to remove the parameter",
        ),
        (
            {
                "postfix__group_instances": [
                    {"name": "-", "mastercf": [{"name": "smtp", "type": "inet", "maxproc": "many"}]}
                ]
            },
            "postfix__group_instances[0].mastercf[0]: instance '-', service 'smtp/inet': maxproc must be an "
            "integer or '-', got 'many'",
        ),
        (
            {
                "postfix__host_instances": [
                    {"name": "-", "mastercf": [{"name": "new", "type": "unix", "chroot": "n"}]}
                ]
            },
            "postfix__host_instances[0].mastercf[0]: instance '-', service 'new/unix': command is required "
            "(the program in Postfix's daemon directory, e.g. 'smtpd')",
        ),
        (
            {"postfix__dependent_instances": [{"name": "out"}]},
            "postfix__dependent_instances[0]: instance name must be '-' or 'postfix-<name>' (letters, "
            "digits, '.', '_', '-'), got 'out'",
        ),
        (
            {"postfix__host_instances": ["-"]},
            "postfix__host_instances[0]: an entry must be a mapping, got '-'",
        ),
        (
            {"postfix__host_instances": [{"name": "-", "state": "off"}]},
            "postfix__host_instances[0]: state must be 'present' or 'absent', got 'off'",
        ),
        (
            {"postfix__host_instances": [{"name": "-", "maincf": {"a": 1}}]},
            "postfix__host_instances[0]: instance '-': maincf must be a list, got dict",
        ),
        (
            {"postfix__host_instances": [{"name": "-", "ports": 25}]},
            "postfix__host_instances[0]: instance '-': unknown field(s) ports; expected name, state, "
            "profile, group, myhostname, inet_interfaces, port, mynetworks, relay_next_hops, tls_cert_file, "
            "tls_key_file, maincf, mastercf",
        ),
        (
            {"postfix__group_instances": [{"name": "-", "profile": "nope"}]},
            "postfix__group_instances[0]: instance '-': profile 'nope' is not defined; known profiles "
            "(postfix__profiles, postfix__custom_profiles): inbound_scanning, loopback_unchecked",
        ),
        (
            {"postfix__host_instances": [{"name": "-", "port": "many"}]},
            "postfix__host_instances[0]: instance '-': port must be a port number (1-65535), got 'many'",
        ),
        (
            {"postfix__host_instances": [{"name": "-", "port": "\u00b2"}]},
            "postfix__host_instances[0]: instance '-': port must be a port number (1-65535), got '\u00b2'",
        ),
        (
            {"postfix__group_instances": [{"name": "postfix-out", "profile": "loopback_unchecked"}]},
            "postfix__group_instances[0]: instance 'postfix-out': profile is loopback_unchecked, which needs "
            "the instance's port (its smtp listener on loopback; mailstack's back-end gets it from "
            "mailman_core__smtp_port)",
        ),
        (
            {"postfix__host_instances": [{"name": "-", "tls_cert_file": "/c.pem"}]},
            "postfix__host_instances[0]: instance '-': tls_cert_file needs its partner: give both "
            "tls_cert_file and tls_key_file, or neither",
        ),
        (
            {"postfix__host_instances": [{"name": "-", "state": "absent"}]},
            "the primary instance '-' must be present in postfix__instances, postfix__dependent_instances, "
            "postfix__group_instances, postfix__host_instances (it runs the others); remove secondary "
            "instances with state: absent, never the primary",
        ),
        (
            {
                "postfix__instances": SCANNING,
                "postfix__dependent_profiles": [
                    RSPAMD,
                    {"inbound_scanning": {"maincf": [{"name": "smtpd_milters", "items": ["x$"]}]}},
                ],
            },
            "postfix__dependent_profiles[1].inbound_scanning.maincf[0]: instance '-', parameter "
            "'smtpd_milters': items[0]: '$' must start a parameter reference ($name, ${name}, $(name)) or be "
            "doubled ('$$' is a literal '$'), got 'x$'",
        ),
        (
            {"postfix__instances": SCANNING, "postfix__dependent_profiles": [RSPAMD, "signer"]},
            "postfix__dependent_profiles[1]: must be a mapping (profile name -> {maincf, mastercf}), got str",
        ),
        (
            {
                "postfix__maincf": [{"name": "smtpd_milters", "value": "inet:a:1"}],
                "postfix__instances": SCANNING,
                "postfix__dependent_profiles": RSPAMD,
            },
            "postfix__dependent_profiles.inbound_scanning.maincf[0]: instance '-', parameter "
            "'smtpd_milters': items extend a list value, but the value so far is 'inet:a:1'; write that "
            "value as a list",
        ),
        (
            {"postfix__instances": [{"name": "-"}, {"name": "postfix-out", "port": 25}]},
            "postfix_check_instances: instance 'postfix-out', service '25/inet': listens on all addresses "
            "port 25, which instance '-', service 'smtp/inet' already uses (all addresses port 25); each "
            "inet endpoint must be used once (instances defined in '-': postfix__instances[0]; "
            "'postfix-out': postfix__instances[1])",
        ),
        (
            {"postfix__hosts_instances": []},
            "unknown input(s) postfix__hosts_instances; expected __postfix_base_mastercf, postfix__maincf, "
            "postfix__mastercf, postfix__profiles, postfix__custom_profiles, postfix__dependent_profiles, "
            "postfix__instances, postfix__dependent_instances, postfix__group_instances, "
            "postfix__host_instances, postfix__relay_transports, postfix__group_relay_transports, "
            "postfix__host_relay_transports, postfix__myhostname, postfix__instance_group, "
            "postfix__tls_self_signed, postfix__staging_dir",
        ),
    ],
)
def test_instances_errors_name_the_variable_and_index(
    pf: ModuleType, changes: dict[str, Any], message: str
) -> None:
    with raises(PRE + message):
        pf.postfix_instances(role_inputs(**changes))


def inst(name: str, *services: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "services": [{"name": s, "type": "inet", "command": "smtpd"} for s in services],
        **extra,
    }


@pytest.mark.parametrize(
    "instances",
    [
        [inst("-", "smtp", "submission", "smtps"), inst("postfix-out", "127.0.0.1:10025")],
        [inst("-", "10.0.0.1:25"), inst("postfix-out", "127.0.0.1:25")],
        [
            inst("-", "smtp", inet_interfaces="10.0.0.1"),
            inst("postfix-out", "25", inet_interfaces=["127.0.0.1"]),
        ],
        [
            inst("-", "smtp", maincf=[{"name": "inet_interfaces", "value": "10.0.0.1"}]),
            inst("postfix-out", "smtp", inet_interfaces="loopback-only"),
        ],
        [inst("-", "smtp"), inst("postfix-out", "smtp", state="absent")],
        [inst("-", "[::1]:25"), inst("postfix-out", "[::2]:25"), {"name": "postfix-x", "mastercf": []}],
    ],
)
def test_check_instances_ok(pf: ModuleType, instances: list[dict[str, Any]]) -> None:
    assert pf.postfix_check_instances(instances) is instances


@pytest.mark.parametrize(
    ("instances", "message"),
    [
        (
            [inst("-", "smtp"), inst("postfix-out", "127.0.0.1:25")],
            "instance 'postfix-out', service '127.0.0.1:25/inet': listens on 127.0.0.1 port 25, which "
            "instance '-', "
            "service 'smtp/inet' already uses (all addresses port 25)",
        ),
        (
            [inst("-", "127.0.0.1:smtp"), inst("postfix-out", "*:25")],
            "instance 'postfix-out', service '*:25/inet': listens on all addresses port 25, which "
            "instance '-', "
            "service '127.0.0.1:smtp/inet' already uses (127.0.0.1 port 25)",
        ),
        (
            [inst("-", "submission", "587")],
            "instance '-', service '587/inet': listens on all addresses port 587, which instance '-', "
            "service 'submission/inet' already uses (all addresses port 587)",
        ),
        (
            [inst("-", "smtps"), inst("postfix-out", "127.0.0.1:submissions")],
            "instance 'postfix-out', service '127.0.0.1:submissions/inet': listens on 127.0.0.1 port "
            "465, which "
            "instance '-', service 'smtps/inet' already uses (all addresses port 465)",
        ),
        (
            [inst("-", "[::1]:25"), inst("postfix-out", "smtp", inet_interfaces="loopback-only")],
            "instance 'postfix-out', service 'smtp/inet': listens on [::1] port 25, which instance '-', "
            "service '[::1]:25/inet' already uses ([::1] port 25)",
        ),
        (
            [inst("-", "10025", inet_interfaces="127.0.0.1"), inst("postfix-out", "127.0.0.1:10025")],
            "instance 'postfix-out', service '127.0.0.1:10025/inet': listens on 127.0.0.1 port 10025, which "
            "instance '-', service '10025/inet' already uses (127.0.0.1 port 10025)",
        ),
        ([inst("-"), inst("-")], "instance '-': instance is defined twice; instance names must be unique"),
        ([inst("-"), "postfix-out"], "item 1: an instance must be a mapping, got 'postfix-out'"),
        (
            [inst("bad")],
            "instance name must be '-' or 'postfix-<name>' (letters, digits, '.', '_', '-'), got 'bad'",
        ),
        (
            [inst("-", "smtp x")],
            "instance '-', service 'smtp x/inet': name of an inet service must be a port "
            "('2525'), a service name ('smtp'), or 'host:port' ('127.0.0.1:10025', '[::1]:25'), got 'smtp x'",
        ),
    ],
)
def test_check_instances_errors(pf: ModuleType, instances: list[dict[str, Any]], message: str) -> None:
    message = f"postfix_check_instances: {message}"
    if "listens on" in message:
        message += "; each inet endpoint must be used once"
    with raises(message):
        pf.postfix_check_instances(instances)


def test_check_instances_not_a_list(pf: ModuleType) -> None:
    with raises("postfix_check_instances: instances must be a list of instance mappings, got dict"):
        pf.postfix_check_instances({"name": "-"})


# ------------------------------------------------------------------------------------------------
# Parsing


def test_parse_debian_master_cf(pf: ModuleType) -> None:
    services = pf.postfix_parse_master_cf((DATA / "debian-master.cf").read_text())
    assert len(services) == 31
    assert services[0] == canonical(name="smtp", type="inet", private="n", chroot="y", command="smtpd")
    relay = next(s for s in services if s["name"] == "relay")
    assert relay["options"] == {"syslog_name": "postfix/$service_name"}
    uucp = next(s for s in services if s["name"] == "uucp")
    assert uucp["args"] == [
        "flags=Fqhu",
        "user=uucp",
        "argv=uux",
        "-r",
        "-n",
        "-z",
        "-a$sender",
        "-",
        "$nexthop!rmail",
        "($recipient)",
    ]
    assert {s["name"] for s in services}.isdisjoint({"submission", "cyrus", "628", "dnsblog"})


def test_parse_long_form_braces_continuations_comments(pf: ModuleType) -> None:
    text = (
        "# header\n\n# about foo\nfoo unix - n y 10? 3 pipe\n"
        "\n  -o { smtpd_banner = hello  world }\n# inside\n  -o x= -o {y=1}\n"
        "  flags=R { a b } -o z\n"
    )
    assert pf.postfix_parse_master_cf(text, keep_comments=True) == [
        canonical(
            unpriv="n",
            chroot="y",
            wakeup="10?",
            maxproc=3,
            command="pipe",
            options={"smtpd_banner": "hello  world", "x": [], "y": "1"},
            args=["flags=R", "a b", "-o", "z"],
            comment="about foo",
        )
    ]
    assert pf.postfix_parse_master_cf(text)[0]["comment"] == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("  -o x=y\n", "continuation line without an entry before it: '  -o x=y'"),
        (
            "smtp inet n - y - -\n",
            "an entry needs 8 fields (service type private unpriv chroot wakeup maxproc "
            "command), got 7 in 'smtp inet n - y - -'",
        ),
        ("smtp inet n - y - - smtpd -o x\n", "service 'smtp/inet': override must be name=value, got 'x'"),
        (
            "smtp inet n - y - many smtpd\n",
            "service 'smtp/inet': maxproc must be an integer or '-', got 'many'",
        ),
        (5, "input must be the text of a master.cf file, got int"),
    ],
)
def test_parse_errors(pf: ModuleType, text: Any, message: str) -> None:
    with raises(f"postfix_parse_master_cf: {message}"):
        pf.postfix_parse_master_cf(text)


# ------------------------------------------------------------------------------------------------
# Through Ansible: the collection's filter loads by its FQCN and runs in a template, errors included


def _ansible_env(tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        ANSIBLE_HOME=str(tmp_path / "ansible-home"),
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_NOCOLOR="1",
    )
    return env


def test_postfix_instances_through_ansible_playbook(tmp_path: Path) -> None:
    playbook = tmp_path / "play.yml"
    out = tmp_path / "out"
    good = role_inputs(
        postfix__host_instances=[{"name": "-", "mastercf": [{"name": "smtp", "type": "inet", "maxproc": 10}]}]
    )
    bad = role_inputs(
        postfix__host_instances=[
            {"name": "-", "mastercf": [{"name": "smtp", "type": "inet", "maxproc": "many"}]}
        ]
    )
    playbook.write_text(
        f"""- hosts: localhost
  connection: local
  gather_facts: false
  vars:
    good: {json.dumps(good)}
    bad: {json.dumps(bad)}
  tasks:
    - name: Render
      ansible.builtin.copy:
        dest: {out}
        content: "{{{{ (good | mailstack.site.postfix_instances)[0].master_cf }}}}"
        mode: "0644"
    - name: Error
      ansible.builtin.debug:
        msg: "{{{{ bad | mailstack.site.postfix_instances }}}}"
      ignore_errors: true
"""
    )
    bindir = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    res = subprocess.run(
        [str(bindir / "ansible-playbook"), "-i", "localhost,", str(playbook)],
        capture_output=True,
        text=True,
        env=_ansible_env(tmp_path),
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "smtp       inet  n       -       y       -       10      smtpd" in out.read_text().splitlines()
    assert (
        "postfix_instances: postfix__host_instances[0].mastercf[0]: instance '-', service 'smtp/inet': "
        "maxproc must be an integer or '-', got 'many'"
    ) in res.stdout


# ------------------------------------------------------------------------------------------------
# What Postfix itself rejects (found by the oracle tests): macros, {...} groups, '#' lines


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "x$",
            "'$' must start a parameter reference ($name, ${name}, $(name)) or be doubled ('$$' is a "
            "literal '$'), got 'x$'",
        ),
        (
            "a $ b",
            "'$' must start a parameter reference ($name, ${name}, $(name)) or be doubled ('$$' is a "
            "literal '$'), got 'a $ b'",
        ),
        ("$(mail_name", "macro reference at '$(mail_name' is not closed or has no name"),
        ("${}", "macro reference at '${}' is not closed or has no name"),
        (
            "{a}b",
            "a word that starts with '{' must end with its matching '}' (Postfix reads it as one {...} "
            "group), got '{a}b'",
        ),
    ],
)
def test_values_postfix_would_reject(pf: ModuleType, value: str, message: str) -> None:
    with raises(f"postfix_main_cf: instance '-', parameter 'a': value: {message}"):
        pf.postfix_main_cf([{"name": "a", "value": value}])
    with raises(f"postfix_main_cf: instance '-', parameter 'a': value[1]: {message}"):
        pf.postfix_main_cf([{"name": "a", "value": ["ok", value]}])
    with raises(f"postfix_master_cf: instance '-', service 'foo/unix': options.x: {message}"):
        pf.postfix_master_cf([svc(options={"x": value})])
    with raises(f"postfix_master_cf: instance '-', service 'foo/unix': options.x[0]: {message}"):
        pf.postfix_master_cf([svc(options={"x": [value]})])


@pytest.mark.parametrize(
    "value", ["a $$ b", "$myhostname", "${x?{a b}:c} $_x $9", "$(mail_name)", "{a b}", "a{b}c"]
)
def test_values_postfix_accepts(pf: ModuleType, value: str) -> None:
    assert pf.postfix_main_cf([{"name": "a", "value": value}]) == f"a = {value}\n"
    pf.postfix_master_cf([svc(options={"x": value}, args=[value])])


def test_unclosed_macro_in_main_cf(pf: ModuleType) -> None:
    message = (
        "postfix_main_cf: instance '-', parameter 'a': value: macro reference at '${queue_directory' is not "
        "closed or has no name"
    )
    with raises(message):
        pf.postfix_main_cf([{"name": "a", "value": "${queue_directory"}])


def test_args_are_not_macro_checked(pf: ModuleType) -> None:
    """pipe(8) expands its own $recipient etc.; Postfix does not parse arguments as macros."""
    assert pf.postfix_master_cf([svc(args=["argv=$", "{a}b"])]).splitlines()[-1] == "  argv=$ { {a}b }"


def test_main_cf_long_list_with_hash_item_stays_on_one_line(pf: ModuleType) -> None:
    items = ["x" * 30, "#not-a-comment", "y" * 30]
    assert pf.postfix_main_cf([{"name": "a", "value": items}]) == f"a = {', '.join(items)}\n"


# What postconf 3.7 says about {...} groups (checked by hand, and again by the oracle tests):
# True = no warning, False = "syntax error after '}'".
GROUPS = {
    "x:{a}b": False,
    "{a}b": False,
    "x {a}b": False,
    "x,{a}b": False,
    "{a}:b": False,
    "x:{a}:b": False,
    "{a}, {b}c": False,
    "x={a}b": True,
    "x;{a}b": True,
    "x{a}b": True,
    "{a} b": True,
    "{a}": True,
    "check_policy_service { unix:private/policy, timeout=10s }": True,
    "${queue_directory?{b}:{c}}": True,
    "{a{b}c}": True,
    "{a},b": True,
    "x:y:{a}b": True,
    "hash:{a}": True,
    "inet:{a b}": True,
}


@pytest.mark.parametrize(("value", "accepted"), GROUPS.items())
def test_brace_groups_as_postfix_reads_them(pf: ModuleType, value: str, accepted: bool) -> None:
    message = (
        "postfix_main_cf: instance '-', parameter 'a': value: a word that starts with '{' must end with its "
        f"matching '}}' (Postfix reads it as one {{...}} group), got {value!r}"
    )
    if accepted:
        assert pf.postfix_main_cf([{"name": "a", "value": value}]) == f"a = {value}\n"
    else:
        with raises(message):
            pf.postfix_main_cf([{"name": "a", "value": value}])


def test_list_option_group_rule_on_joined_text(pf: ModuleType) -> None:
    assert "-o { x = {a},b }" in pf.postfix_master_cf([svc(options={"x": ["{a}", "b"]})])
    message = (
        "postfix_master_cf: instance '-', service 'foo/unix': options.x[0]: a word that starts with '{' "
        "must end with its matching '}' (Postfix reads it as one {...} group), got 'hash:{a}b'"
    )
    with raises(message):
        pf.postfix_master_cf([svc(options={"x": ["hash:{a}b", "c"]})])


# ------------------------------------------------------------------------------------------------
# Speed
