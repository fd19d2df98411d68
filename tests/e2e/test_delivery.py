"""A post from the internet to a list of 2,000 members on four remote domains: every member gets
exactly one copy, with the list's headers, through an MX, the active back-end, postfix-out and
the relays; every queue of the site is empty at the end."""

import re
import shlex
import uuid

import pytest
from ansible_collections.mailstack.site.plugins.plugin_utils.addresses import numbered_addresses
from e2e import copies, delete, deliver, exactly_once, internet, post
from test_lab import HOSTVARS, REMOTE_DOMAINS, group

CROWD = "crowd@lists.mailstack.test"
# The lab inventory's members (inventories/lab/group_vars/mailman_core), by the same function.
CROWD_MEMBERS = set(numbered_addresses("crowd", 2000, REMOTE_DOMAINS))
ACTIVE = next(h for h in group("mailman_core") if HOSTVARS[h].get("mailstack__active_backend"))


def test_a_post_to_2000_members_arrives_exactly_once_with_the_list_headers(figure):
    token = f"crowd-{uuid.uuid4().hex[:12]}"
    mx, tried = deliver(CROWD, token)
    assert mx is not None, tried
    copies = exactly_once(token, CROWD_MEMBERS, f"post to {CROWD} through {mx}", figure, timeout=600)

    list_id = sum(c["list_id"] == "Lab crowd list <crowd.lists.mailstack.test>" for c in copies)
    subject = sum(c["subject"] == f"[crowd] e2e {token}" for c in copies)
    # The path, newest hop first: relay -> internet; back-end -> relay; Mailman -> postfix-out (over
    # loopback, on the back-end); MX -> back-end's Postfix; internet -> MX.
    relays = {HOSTVARS[r]["mailstack__address"]: r for r in group("relays")}
    backend = f"{ACTIVE}.lab.mailstack.test"
    path = [
        r"from \S+ \(\S+ \[(?P<relay>[\d.]+)\]\) by internet\.lab\.mailstack\.test ",
        rf"from {re.escape(backend)} \(.*\) by relay\d+\.lab\.mailstack\.test ",
        rf"from \S+ \(\S+ \[127\.0\.0\.1\]\) by {re.escape(backend)} ",
        rf"from {re.escape(mx)} \(.*\) by {re.escape(backend)} ",
        rf"from internet\.lab\.mailstack\.test \(.*\) by {re.escape(mx)} ",
    ]
    path_ok, by_relay = 0, dict.fromkeys(relays.values(), 0)
    for c in copies:
        hops = [re.match(pattern, hop) for pattern, hop in zip(path, c["received"], strict=False)]
        if len(c["received"]) == len(path) and all(hops) and hops[0]["relay"] in relays:
            path_ok += 1
            by_relay[relays[hops[0]["relay"]]] += 1
    figure(
        f"List-Id on {list_id}, subject prefix on {subject}, whole path (internet -> {mx} -> {ACTIVE} "
        f"-> Mailman -> postfix-out -> relay -> internet) on {path_ok} of {len(copies)} copies; "
        f"by relay: {by_relay}"
    )
    assert list_id == subject == path_ok == len(CROWD_MEMBERS)
    assert all(by_relay.values())


def test_a_copy_that_arrives_after_the_first_count_fails_exactly_once(figure):
    """The helper every "exactly once" claim goes through counts again after the site settled: one
    more copy for a member, stored after the first count (here: the test adds it), fails it."""
    members = {"alice@remote-a.test", "bob@remote-a.test", "carol@remote-b.test", "dave@remote-b.test"}
    token = f"duplicate-{uuid.uuid4().hex[:12]}"
    added: list[str] = []

    def add_a_copy(files: list[str]) -> None:
        copy = files[0].replace("/new/", "/new/duplicate-")
        internet().check_output(f"cp -p {shlex.quote(files[0])} {shlex.quote(copy)}")
        added.append(copy)

    post("announce@lists.mailstack.test", token)
    try:
        with pytest.raises(AssertionError, match="after the queues settled") as failed:
            exactly_once(
                token,
                members,
                "post with a copy added after the first count",
                figure,
                after_first_count=add_a_copy,
            )
    finally:
        delete(copies(token))
    figure(f"{len(added)} copy added after the first count: exactly_once failed with {failed.value}")
    assert "1 duplicates" in str(failed.value)
