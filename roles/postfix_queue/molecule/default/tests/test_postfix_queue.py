"""The role's queue operations on real Postfix hosts: count, wait, hand over, drain.

pq-sender defers every message (its relayhost refuses connections); pq-heir delivers example.test
into the Maildir /var/mail/sink/. The tests run in order: the mail the first one queues is what the
second hands over.
"""

import os
import pathlib
import time
import uuid

import pytest
from support.molecule_playbook import ansible_playbook
from support.scenario import flat

testinfra_hosts = ["pq-sender"]
SCENARIO = pathlib.Path(__file__).resolve().parents[1]
PROGRAM = "/usr/local/libexec/mailstack/postfix-queue"
TOKEN = f"pq-{uuid.uuid4().hex[:10]}"
COUNT = 3


def heir(host):
    return host.get_host("ansible://pq-heir", ansible_inventory=host.backend.ansible_inventory)


def send(host, rcpt, subject):
    host.run_expect(
        [0], f"printf 'Subject: {subject}\\n\\n{subject}\\n' | sendmail -f sender@example.net {rcpt}"
    )


def deferred(host):
    return int(host.check_output(f"{PROGRAM} count-deferred"))


def until(check, timeout=60):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(1)
    return check()


def stored(host, token):
    """The heir's stored copies of the token: one recipient line each."""
    out = host.run(f"grep -l {token} /var/mail/sink/new/* 2>/dev/null | xargs -r grep -h '^Delivered-To:'")
    return sorted(out.stdout.split("\n")[:-1])


def test_1_count_and_wait_on_deferred_mail(host):
    assert deferred(host) == 0
    for i in range(COUNT):
        send(host, f"{TOKEN}-{i}@example.test", f"{TOKEN} {i}")
    assert until(lambda: deferred(host) == COUNT), f"deferred: {deferred(host)}"
    enough = ansible_playbook(SCENARIO / "wait.yml", extra={"molecule_max": COUNT})
    assert enough.returncode == 0, enough.stdout
    assert f"deferred {COUNT}" in flat(enough.stdout)
    # More deferred mail than allowed: the wait fails and says how many.
    too_many = ansible_playbook(SCENARIO / "wait.yml", extra={"molecule_max": 0})
    assert too_many.returncode == 2
    assert f"{COUNT} deferred messages after 2 s (at most 0 wanted)" in flat(too_many.stdout)


def test_2_the_heir_delivers_the_handed_over_queue_once(host):
    run = ansible_playbook(SCENARIO / "handover.yml")
    assert run.returncode == 0, run.stdout
    assert f"handed over {COUNT}" in flat(run.stdout)
    other = heir(host)
    assert until(lambda: len(stored(other, TOKEN)) >= COUNT), stored(other, TOKEN)
    time.sleep(3)  # a duplicate would arrive now
    assert stored(other, TOKEN) == [f"Delivered-To: {TOKEN}-{i}@example.test" for i in range(COUNT)]
    # Nothing stays behind: the sender's queue, the heir's queue, the copies on both and the controller.
    assert host.check_output(f"{PROGRAM} list") == ""
    assert until(lambda: other.check_output(f"{PROGRAM} list") == "")
    assert not host.file("/var/tmp/mailstack-handover.tar").exists
    handover = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secret" / "handover"
    assert not list(handover.glob("*.tar"))
    assert handover.stat().st_mode & 0o777 == 0o700, oct(handover.stat().st_mode)


def test_3_drain_delivers_or_names_what_is_left(host):
    other = heir(host)
    send(other, f"{TOKEN}-drain@example.test", f"{TOKEN} drain")
    assert other.check_output(f"{PROGRAM} drain 10") == ""
    # pack stopped the sender's Postfix (nothing in flight while the queue moved); failover.yml starts
    # it again, as here.
    host.run_expect([0], "systemctl start postfix@-.service")
    send(host, f"{TOKEN}-stuck@example.test", f"{TOKEN} stuck")
    assert until(lambda: deferred(host) == 1)
    left = host.check_output(f"{PROGRAM} drain 1").split()
    assert len(left) == 1 and left == host.check_output(f"{PROGRAM} list").split()
    host.run_expect([0], f"postsuper -d {left[0]}")


@pytest.mark.parametrize("args", ["", "drain", "drain many", "wait-deferred 1", "pack", "adopt", "nonsense"])
def test_4_bad_usage_is_refused(host, args):
    run = host.run(f"{PROGRAM} {args}")
    assert run.rc == 2 and "usage: postfix-queue" in run.stderr
