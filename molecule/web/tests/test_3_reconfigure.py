"""molecule/web, last: Mailman's settings changed through the back-end's playbook (reconfigure.yml).

Runs after the web tests: the changes restart Mailman.
"""

import json
import re
import time
import uuid

import pytest
from web_scenario import (
    MEMBERS,
    SCENARIO,
    ansible_playbook,
    configured,
    host,
    rest,
    running,
    smtp,
    stored,
    wait_all_running,
    written,
)

RECONFIGURED = ("-e", "mailman_core__max_recipients=2", "-e", "mailman_core__out_runners=2")


def run_playbook(playbook, *extra):
    return ansible_playbook(
        SCENARIO / playbook, *extra, env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    )


@pytest.fixture(scope="module")
def changes(tmp_path_factory):
    """The extra vars of the one reconfiguring run: a new list of 10,000 members (bulk2@), and
    Mailman's max_recipients and out runners changed."""
    extra = tmp_path_factory.mktemp("reconfigure") / "bulk2.json"
    members = [f"new{i:05d}@bulk.example.test" for i in range(10000)]
    bulk2 = {"name": "bulk2@lists.web.test", "members": members}
    extra.write_text(json.dumps({"mailman_core__host_lists": [bulk2]}))
    return ("-e", f"@{extra}", *RECONFIGURED)


@pytest.fixture(scope="module")
def reconfigured(changes):
    """One run of the back-end's playbook with the changes: (its output, Mailman's start count before)."""
    before = restarts(host("web-backend"))
    proc = run_playbook("reconfigure.yml", *changes)
    assert proc.returncode == 0, proc.stdout[-3000:]
    return proc, before


def test_adding_ten_thousand_members_takes_seconds(reconfigured):
    proc, _ = reconfigured
    assert rest("lists/bulk2.lists.web.test/roster/member?count=1&page=1")["total_size"] == 10000
    # The list task's own time (profile_tasks). It includes waiting for Mailman's REST API after
    # the restart this run causes (72.5 s in one make test at load 7, 6.7 s for the members on an
    # idle host), so the bound is loose; one REST call per member takes about 5.5 min for 10,000
    # (roles/mailman_core/README.md), Mailman's addmembers about 4 min 15 s.
    took = re.search(r"Make domains and lists match the data -+ ([0-9.]+)s", proc.stdout)
    assert took and float(took.group(1)) < 240, proc.stdout[-2000:]


def wait_for_runners(backend, timeout=60):
    """After a restart: every runner Mailman's configuration starts runs, and LMTP accepts connections."""
    _, missing = wait_all_running(backend, configured(backend), timeout)
    assert not missing, f"Mailman's runners {sorted(missing)} did not come up"
    probe = "import socket; socket.create_connection(('127.0.0.1', 8024), timeout=2)"
    deadline = time.monotonic() + timeout
    while backend.run("python3 -c %s", probe).rc != 0:
        assert time.monotonic() < deadline, "Mailman's LMTP runner does not accept connections"
        time.sleep(1)


def restarts(backend):
    log = backend.check_output("journalctl -u mailman3 --no-pager -o cat")
    return sum(1 for line in log.splitlines() if line.startswith("Started mailman3"))


def test_changed_max_recipients_and_out_runners_restart_mailman_once(reconfigured, changes):
    backend = host("web-backend")
    proc, before = reconfigured
    assert proc.stdout.count("RUNNING HANDLER [mailman_core : Restart Mailman]") == 1
    assert restarts(backend) == before + 1

    assert backend.check_output("runuser -u list -- mailman conf -s mta -k max_recipients").endswith("2")
    wait_for_runners(backend)
    assert sorted(r for r in running(backend) if r.startswith("out:")) == ["out:0:2", "out:1:2"]
    # The runner check expects the new set: the file and the copy the restarted master took.
    assert written(backend) == written(backend, "/run/mailman3/mailstack-runners") == configured(backend)

    # Applied: three members, at most two recipients per transaction: two postfix-out queue IDs.
    subject = f"split-{uuid.uuid4().hex[:12]}"
    replies = smtp("web-client", "bob@example.test", ["dev@lists.web.test"], subject)
    assert replies.get("data") == 250, replies
    copies = stored(f"Subject: [dev] {subject}", len(MEMBERS))
    assert set(copies) == set(MEMBERS)
    hop = r"by out\.web-backend\.web\.test \(Postfix\) with E?SMTP id (\w+)"
    ids = {re.search(hop, t).group(1) for t in copies.values()}
    assert len(ids) == 2

    # The same data again: nothing changes, no restart; by now the runner check ran at least once
    # (every 30 s) since the restart, and did not restart Mailman either.
    proc = run_playbook("reconfigure.yml", *changes)
    assert proc.returncode == 0 and "changed=0" in proc.stdout, proc.stdout[-3000:]
    assert restarts(backend) == before + 1

    def monotonic(prop, unit):
        return int(backend.check_output(f"systemctl show --property={prop} --value {unit}"))

    checked = monotonic("ExecMainStartTimestampMonotonic", "mailman3-runners.service")
    assert checked > monotonic("ActiveEnterTimestampMonotonic", "mailman3"), "no check since the restart"


def test_runner_count_not_a_power_of_two_is_refused_before_anything_changes():
    backend = host("web-backend")
    before = restarts(backend)
    config = backend.check_output("sha256sum /etc/mailman3/mailman.cfg")
    proc = run_playbook("reconfigure.yml", "-e", "mailman_core__out_runners=3")
    assert proc.returncode != 0
    assert "runner 'out': instances must be a power of two" in proc.stdout + proc.stderr
    assert restarts(backend) == before
    assert backend.check_output("sha256sum /etc/mailman3/mailman.cfg") == config
