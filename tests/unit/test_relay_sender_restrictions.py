"""The relay_sender_restrictions filter: the entries it makes, that the real Postfix parses them
(tests/oracle reads rendered files back; here the shape), and its errors."""

import re

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_senders import (
    CLASS,
    relay_sender_restrictions,
)


def test_web_clients_get_the_class_that_refuses_list_domains():
    clients = ["10.0.0.51", "fd00::52", "10.0.0.51"]
    entries = relay_sender_restrictions(clients, ["lists.example.org", "b.example"])
    by_name = {e["name"]: e["value"] for e in entries}
    assert list(by_name) == ["smtpd_restriction_classes", CLASS, "smtpd_sender_restrictions"]
    assert by_name["smtpd_restriction_classes"] == [CLASS]
    assert by_name[CLASS] == (
        "check_sender_access inline:{ {lists.example.org = REJECT 5.7.1 list addresses are sent by the list "
        "back-ends only}, {b.example = REJECT 5.7.1 list addresses are sent by the list back-ends only} }"
    )
    # Each client once, IPv6 in Postfix's compressed form.
    assert by_name["smtpd_sender_restrictions"] == (
        f"check_client_access inline:{{ {{10.0.0.51 = {CLASS}}}, {{fd00::52 = {CLASS}}} }}"
    )


@pytest.mark.parametrize(("clients", "domains"), [([], ["lists.example.org"]), (["10.0.0.51"], [])])
def test_nothing_to_refuse_makes_no_entries(clients, domains):
    assert relay_sender_restrictions(clients, domains) == []


@pytest.mark.parametrize(
    ("clients", "domains", "message"),
    [
        ("10.0.0.51", [], "input must be the refused clients' addresses (a list), got str"),
        ([], {"a": 1}, "domains must be the list domains (a list), got dict"),
        (["web1"], ["lists.example.org"], "client 'web1' is not an IP address"),
        (["10.0.0.51"], ["Lists.Example.org"], "domain 'Lists.Example.org' is not a lower-case domain name"),
        (["10.0.0.51"], ["a b.example"], "domain 'a b.example' is not a lower-case domain name"),
    ],
)
def test_errors_name_the_value_at_fault(clients, domains, message):
    with pytest.raises(AnsibleFilterError, match=f"^relay_sender_restrictions: {re.escape(message)}$"):
        relay_sender_restrictions(clients, domains)
