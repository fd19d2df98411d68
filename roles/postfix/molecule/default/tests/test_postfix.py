"""Verify the postfix role over real SMTP: two instances on postfix-main, delivery to postfix-nexthop.

Runs after converge/idempotence/check. The bad-input tests and the removal test run the role
again with ansible-playbook (removal last: it changes the hosts for good).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import yaml
from support.molecule_playbook import ansible_playbook
from support.scenario import ansible_host, recap

SCENARIO = Path(__file__).resolve().parents[1]
ROLE = SCENARIO.parents[1]
TOP = ROLE.parents[1]

MAIN_IP, NEXTHOP_IP = "172.31.10.10", "172.31.10.11"
OUT_PORT = 10025

SMTP_SEND = """
import smtplib, sys
host, port, sender, rcpt, subject = sys.argv[1:6]
with smtplib.SMTP(host, int(port), timeout=30) as s:
    s.ehlo("client.example.test")
    s.sendmail(sender, [rcpt], f"From: <{sender}>\\nTo: <{rcpt}>\\nSubject: {subject}\\n\\nmolecule test\\n")
print("sent")
"""

PROBE = """
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=5) as s:
        print("open", s.recv(200).decode(errors="replace").strip())
except OSError as exc:
    print("closed", type(exc).__name__)
"""




@pytest.fixture(scope="module")
def main():
    return ansible_host("postfix-main")


@pytest.fixture(scope="module")
def nexthop():
    return ansible_host("postfix-nexthop")


def _py(host, code: str, *args: str) -> str:
    cmd = host.run("python3 -c " + " ".join(["%s"] * (len(args) + 1)), code, *args)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def _listeners(host) -> list[tuple[str, int]]:
    """(address, port) of every listening TCP socket, from /proc/net/tcp and tcp6."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        text = host.run("cat %s", table).stdout
        for line in text.splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A":
                continue
            addr, port = fields[1].split(":")
            if len(addr) == 8:
                address = ".".join(str(int(addr[i : i + 2], 16)) for i in (6, 4, 2, 0))
            else:
                address = "v6:" + addr
            found.append((address, int(port, 16)))
    return found


def _playbook(
    playbook: str, extra: dict | None = None, limit: str = "postfix-main", args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess:
    return ansible_playbook(SCENARIO / playbook, "--limit", limit, *args, extra=extra, timeout=600)


def _recap_changed(output: str) -> int:
    return recap(output, "postfix-main")["changed"]


LIVE_FILES = [
    "/etc/postfix/main.cf",
    "/etc/postfix/master.cf",
    "/etc/postfix-out/main.cf",
    "/etc/postfix-out/master.cf",
]


def _checksums(host) -> dict[str, str]:
    return {path: host.file(path).sha256sum for path in LIVE_FILES}


# ---------------------------------------------------------------------------------------------
# Listeners


def test_out_listens_on_loopback_port_only(main):
    ports = [(addr, port) for addr, port in _listeners(main) if port == OUT_PORT]
    assert ports == [("127.0.0.1", OUT_PORT)]


def test_primary_listens_on_25(main):
    assert ("0.0.0.0", 25) in _listeners(main)


def test_out_not_reachable_from_other_host_primary_is(nexthop):
    assert _py(nexthop, PROBE, MAIN_IP, str(OUT_PORT)).startswith("closed")
    banner = _py(nexthop, PROBE, MAIN_IP, "25")
    assert banner.startswith("open 220 postfix-main.example.test ESMTP"), banner


def test_out_answers_on_loopback_with_its_own_name(main):
    banner = _py(main, PROBE, "127.0.0.1", str(OUT_PORT))
    assert banner.startswith("open 220 out.postfix-main.example.test ESMTP"), banner


# ---------------------------------------------------------------------------------------------
# Mail flow and logging


def _wait_for(host, command: str, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        result = host.run(command)
        if result.rc == 0 and result.stdout.strip():
            return result.stdout
        assert time.monotonic() < deadline, f"timed out waiting for: {command}"
        time.sleep(1)


def _send_via_out(main, subject: str, rcpt: str = "member@example.test") -> str:
    """Send one message from loopback into postfix-out; returns "sent" or the SMTP error."""
    return _py(main, SMTP_SEND, "127.0.0.1", str(OUT_PORT), "list@lists.example.test", rcpt, subject)


def test_out_accepts_from_loopback_and_delivers_to_next_hop(main, nexthop):
    subject = f"molecule-out-{uuid.uuid4().hex}"
    assert _send_via_out(main, subject) == "sent"
    stored = _wait_for(nexthop, f"grep -rl 'Subject: {subject}' /var/mail/sink/new")
    message = nexthop.file(stored.split()[0]).content_string
    assert "by out.postfix-main.example.test" in message  # postfix-out handed it over
    log = _wait_for(main, f"grep -h 'status=sent' /var/log/postfix-out.log | grep -F '{NEXTHOP_IP}]:25'")
    assert "postfix-out/smtp[" in log


FAILOVER_MESSAGES = 20


def test_out_fails_over_from_a_dead_next_hop(main, nexthop):
    # relay_next_hops = [nexthop]:2525 (closed) and [nexthop]:25: randmap sends about half of
    # the messages to the dead hop; smtp_fallback_relay must deliver every one through port 25.
    params = main.run("postconf -c /etc/postfix-out -h relayhost smtp_fallback_relay").stdout.splitlines()
    assert params == ["", f"[{NEXTHOP_IP}]:2525, [{NEXTHOP_IP}]:25"], params
    tag = f"molecule-failover-{uuid.uuid4().hex}"
    for number in range(FAILOVER_MESSAGES):
        # One recipient each, as Mailman sends: trivial-rewrite caches the next hop it
        # resolved for an address, so one recipient for all would draw the randmap once.
        sent = _send_via_out(main, f"{tag}-{number}", f"member-{number}@example.test")
        assert sent == "sent"
    deadline = time.monotonic() + 90
    while True:
        arrived = nexthop.run(f"grep -rlF 'Subject: {tag}-' /var/mail/sink/new").stdout.split()
        if len(arrived) == FAILOVER_MESSAGES or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert len(arrived) == FAILOVER_MESSAGES, main.run("postqueue -c /etc/postfix-out -p").stdout
    refused = main.run(
        f"grep -cF '{NEXTHOP_IP}]:2525: Connection refused' /var/log/postfix-out.log"
    ).stdout.strip()
    assert int(refused or 0) > 0  # the dead hop was really chosen (chance of never: 2**-20)


def test_each_instance_logs_under_its_own_name(main, nexthop):
    # The primary (journald): a session from the other host.
    subject = f"molecule-primary-{uuid.uuid4().hex}"
    assert (
        _py(nexthop, SMTP_SEND, MAIN_IP, "25", "a@example.test", "b@parked.example.test", subject) == "sent"
    )
    journal = _wait_for(main, f"journalctl --no-pager -o cat -t postfix/smtpd | grep -F '{NEXTHOP_IP}'")
    assert "connect from" in journal
    identifiers = main.run("journalctl --no-pager -o json --output-fields=SYSLOG_IDENTIFIER").stdout
    names = {json.loads(line).get("SYSLOG_IDENTIFIER", "") for line in identifiers.splitlines() if line}
    assert not [n for n in names if n.startswith("postfix-out/")], names  # postfix-out logs to its file
    # postfix-out (maillog_file through postlogd): its own name only.
    out_log = main.file("/var/log/postfix-out.log").content_string
    programs = set(re.findall(r" (postfix[^/\s]*)/[a-z-]+\[", out_log))
    assert programs == {"postfix-out"}, programs
    # Debian's relay service no longer hard-codes postfix/$service_name.
    relay = main.run("postconf -c /etc/postfix-out -P relay/unix/syslog_name").stdout
    assert "$multi_instance_name" in relay and "postfix/$service_name" not in relay


# ---------------------------------------------------------------------------------------------
# master.cf is exactly the data


def _expected_out_services() -> list[dict]:
    base = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())["__postfix_base_mastercf"]
    profile = yaml.safe_load((ROLE / "defaults" / "main" / "profile_loopback_unchecked.yml").read_text())
    assert profile["postfix__profile_loopback_unchecked"]["mastercf"] == []
    services = []
    for entry in base:
        service = {
            key: str(entry.get(key, "-"))
            for key in ("name", "type", "private", "unpriv", "chroot", "wakeup", "maxproc", "command")
        }
        if service["name"] == "smtp" and service["type"] == "inet":
            service["name"] = str(OUT_PORT)
        service["options"] = {k: str(v) for k, v in (entry.get("options") or {}).items()}
        services.append(service)
    return services


def test_postconf_M_shows_exactly_the_services_of_the_data(main):
    lines = main.run("postconf -c /etc/postfix-out -M").stdout.splitlines()
    actual = []
    for line in lines:
        fields = line.split()
        keys = ("name", "type", "private", "unpriv", "chroot", "wakeup", "maxproc", "command")
        service = dict(zip(keys, fields[:8], strict=True))
        service["options"] = dict(opt.split("=", 1) for opt in fields[9::2] if fields[8::2][0] == "-o")
        actual.append(service)
    assert actual == _expected_out_services()


# ---------------------------------------------------------------------------------------------
# Bad input: fails before the host changes, naming the variable


# The entry is the host layer postfix__host_instances[0], over the scenario's group layer.
BAD_INPUT = {
    "unknown profile": (
        {"name": "postfix-out", "profile": "no_such_profile"},
        ["postfix__host_instances[0]: instance 'postfix-out': profile 'no_such_profile' is not defined"],
    ),
    "duplicate port": (
        {"name": "postfix-out", "port": 25, "inet_interfaces": "all"},
        [
            "postfix_check_instances",
            "port 25",
            "'postfix-out': postfix__group_instances[1], postfix__host_instances[0]",
        ],
    ),
    "malformed service": (
        {
            "name": "postfix-out",
            "mastercf": [{"name": "smtp", "type": "inet", "command": "smtpd", "maxproc": "many"}],
        },
        ["postfix__host_instances[0].mastercf[0]: instance 'postfix-out', service 'smtp/inet': maxproc"],
    ),
    "bad value": (
        {"name": "postfix-out", "maincf": [{"name": "relayhost", "value": {"a": 1}}]},
        [
            "postfix__host_instances[0].maincf[0]: instance 'postfix-out', parameter 'relayhost': "
            "value must be a string, integer, boolean or list"
        ],
    ),
    "wrong type": (
        {"name": "postfix-out", "port": "many"},
        ["postfix__host_instances", "port"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_fails_before_any_change(main, case):
    entry, expected = BAD_INPUT[case]
    before = _checksums(main)
    extra = {"postfix__host_instances": [entry]}
    result = _playbook("converge.yml", extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    for text in expected:
        assert text in output, (text, output[-3000:])
    assert _recap_changed(output) == 0
    assert "Install Postfix" not in output  # stopped in the validation block
    assert _checksums(main) == before


def test_parameter_postfix_refuses_leaves_live_config_untouched(main):
    before = _checksums(main)
    entry = {"name": "postfix-out", "maincf": [{"name": "no_such_parameter", "value": 1}]}
    extra = {"postfix__host_instances": [entry]}
    result = _playbook("converge.yml", extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "unused parameter: no_such_parameter=1" in output
    assert "live config untouched" in output
    assert _checksums(main) == before
    assert main.service("postfix@postfix-out").is_running


# ---------------------------------------------------------------------------------------------
# Check mode on a host the role never converged


def test_check_mode_on_a_fresh_host_reports_changes_without_failing():
    fresh = ansible_host("postfix-fresh")
    assert not fresh.exists("postconf"), "postfix-fresh must never be converged"
    result = _playbook("fresh.yml", limit="postfix-fresh", args=("--check", "--diff"))
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    counters = recap(output, "postfix-fresh")
    assert counters["failed"] == 0 and counters["changed"] > 0, counters
    assert "Install Postfix" in output and "Create the directories of the instances" in output
    # --diff shows the configuration it would write.
    assert "+myhostname = postfix-fresh.example.test" in output
    assert f"+smtp_fallback_relay = [{NEXTHOP_IP}]:25" in output
    # Check mode changed nothing.
    assert not fresh.exists("postconf")
    for path in ("/etc/postfix-out", "/var/spool/postfix-out", "/var/lib/mailstack/postfix"):
        assert not fresh.file(path).exists, path


# ---------------------------------------------------------------------------------------------
# Removal (last: it changes the host for good)


def test_removal_refused_while_the_instance_holds_mail(main, nexthop):
    # Park one message in postfix-out (which keeps running): with the next hop down it is
    # deferred; then hold it and bring the next hop back.
    subject = f"molecule-held-{uuid.uuid4().hex}"
    assert nexthop.run("systemctl stop postfix@-").rc == 0
    try:
        sent = _send_via_out(main, subject)
        assert sent == "sent"
        deadline = time.monotonic() + 60
        while True:
            lines = main.run("postqueue -c /etc/postfix-out -j").stdout.splitlines()
            queued = [json.loads(line) for line in lines if line.strip()]
            if [q["queue_name"] for q in queued] == ["deferred"]:
                break
            assert time.monotonic() < deadline, queued
            time.sleep(1)
        hold = main.run("postsuper -c /etc/postfix-out -h ALL")
        assert hold.rc == 0, hold.stderr
    finally:
        assert nexthop.run("systemctl start postfix@-").rc == 0
    held = [
        json.loads(line) for line in main.run("postqueue -c /etc/postfix-out -j").stdout.splitlines() if line
    ]
    assert [q["queue_name"] for q in held] == ["hold"], held
    before = _checksums(main)

    result = _playbook("remove.yml")
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert "instance 'postfix-out' (1 queued message(s)" in output, output[-3000:]
    assert "postfix__destroy_queued_mail" in output
    assert _recap_changed(output) == 0
    assert _checksums(main) == before
    assert main.service("postfix@postfix-out").is_running
    assert main.run("postqueue -c /etc/postfix-out -j").stdout.strip().startswith("{")

    # The instance is intact: released, the message goes out to the next hop.
    assert main.run("postsuper -c /etc/postfix-out -H ALL").rc == 0
    assert main.run("postqueue -c /etc/postfix-out -f").rc == 0
    _wait_for(nexthop, f"grep -rl 'Subject: {subject}' /var/mail/sink/new")
    deadline = time.monotonic() + 30
    while main.run("postqueue -c /etc/postfix-out -j").stdout.strip():
        assert time.monotonic() < deadline, "postfix-out's queue did not empty"
        time.sleep(1)


def _master_pid(host, spool: str) -> str:
    return host.file(f"{spool}/pid/master.pid").content_string.strip()


def test_removing_out_leaves_primary_running_and_its_queue(main):
    subject = f"molecule-parked-{uuid.uuid4().hex}"
    assert (
        _py(main, SMTP_SEND, "127.0.0.1", "25", "a@example.test", "c@parked.example.test", subject) == "sent"
    )
    queue_before = _wait_for(main, "postqueue -j | grep -F 'c@parked.example.test'")
    ids_before = {json.loads(line)["queue_id"] for line in queue_before.splitlines()}
    pid_before = _master_pid(main, "/var/spool/postfix")

    result = _playbook("remove.yml")
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert _recap_changed(output) > 0

    for path in (
        "/etc/postfix-out",
        "/var/spool/postfix-out",
        "/var/lib/postfix-out",
        "/var/lib/mailstack/postfix/postfix-out",
    ):
        assert not main.file(path).exists, path
    out = main.service("postfix@postfix-out")
    assert not out.is_running and not out.is_enabled
    assert all(port != OUT_PORT for _, port in _listeners(main))
    assert "/etc/postfix-out" not in main.run("postconf -h multi_instance_directories").stdout

    primary = main.service("postfix@-")
    assert primary.is_running and primary.is_enabled
    assert _master_pid(main, "/var/spool/postfix") == pid_before  # reloaded, not restarted
    queue_after = main.run("postqueue -j").stdout
    ids_after = {json.loads(line)["queue_id"] for line in queue_after.splitlines() if "c@parked" in line}
    assert ids_before <= ids_after
    assert _py(main, PROBE, "127.0.0.1", "25").startswith("open 220 postfix-main.example.test")

    again = _playbook("remove.yml")
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert _recap_changed(again.stdout) == 0
