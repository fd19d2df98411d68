"""plugin_utils/addresses.py (filter numbered_addresses): the lab's list members and what the tests expect."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mailstack.site.plugins.plugin_utils.addresses import numbered_addresses


def test_numbered_over_the_domains_in_turn():
    got = numbered_addresses("member", 5, ["remote-a.test", "remote-b.test"])
    assert got == [
        "member0@remote-a.test",
        "member1@remote-b.test",
        "member2@remote-a.test",
        "member3@remote-b.test",
        "member4@remote-a.test",
    ]
    assert numbered_addresses("x", 0, ["a.test"]) == []
    assert len(set(numbered_addresses("crowd", 2000, ["a.test", "b.test", "c.test", "d.test"]))) == 2000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("Member", 1, ["a.test"]), "the prefix must be a local part"),
        (("m", -1, ["a.test"]), "count must be an integer from 0 to 1000000, got -1"),
        (("m", True, ["a.test"]), "count must be an integer"),
        (("m", 1, []), "domains must be a non-empty list of domain names, got list []"),
        (("m", 1, "a.test"), "domains must be a non-empty list of domain names, got str"),
        (("m", 1, ["a.test", "not a domain"]), "domains[1] must be a domain name, got 'not a domain'"),
    ],
)
def test_bad_arguments_are_named(args, message):
    with pytest.raises(
        AnsibleFilterError, match="^numbered_addresses: " + message.replace("[", r"\[").replace("]", r"\]")
    ):
        numbered_addresses(*args)
