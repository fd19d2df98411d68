"""roles/mailman_core with postgresql and postfix: lists as data, real SMTP through Mailman and postfix-out.

Tests run in file order; the last ones reconfigure Mailman (max_recipients, out runners).
"""

import base64
import json
import os
import pathlib
import re
import sys
import time
import uuid

import pytest
import testinfra

BACKEND = "172.31.15.10"
NEXTHOP_MAILDIR = "/var/mail/sink/new"
SCENARIO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[3]
sys.path.insert(0, str(PROJECT / "tests"))
from molecule_playbook import ansible_playbook  # noqa: E402

SECRET = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secret"
MEMBERS = ["alice@example.test", "bob@example.test", "carol@example.test"]
RECONFIGURED = ("-e", "mailman_core__max_recipients=2", "-e", "mailman_core__out_runners=2")


def host(name):
    return testinfra.get_host(f"docker://{name}")


def rest(path):
    """GET on Mailman's REST API, from the back-end itself (it listens on loopback only)."""
    password = (SECRET / "mailman_core" / "rest.password").read_text().strip()
    token = base64.b64encode(f"restadmin:{password}".encode()).decode()
    script = (
        "import json, sys, urllib.request; r = urllib.request.Request(sys.argv[1], "
        "headers={'Authorization': 'Basic ' + sys.argv[2]}); print(urllib.request.urlopen(r).read().decode())"
    )
    out = host("mailman-backend").check_output(
        "python3 -c %s %s %s", script, f"http://127.0.0.1:8001/3.1/{path}", token)
    return json.loads(out)


def smtp(client, sender, rcpts, subject):
    """One SMTP transaction from `client` to the back-end's port 25; returns the replies seen, as JSON."""
    script = r"""
import json, smtplib, sys
sender, rcpts, subject = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
msg = (f"From: {sender}\r\nTo: {rcpts[0]}\r\nSubject: {subject}\r\n"
       f"Message-ID: <{subject}@example.test>\r\n\r\nHello list.\r\n")
out = {}
try:
    s = smtplib.SMTP(sys.argv[4], 25, timeout=30)
    out["ehlo"] = s.ehlo("client.example.test")[0]
    out["mail"] = s.mail(sender)[0]
    out["rcpt"] = [s.rcpt(r)[0] for r in rcpts]
    if any(code == 250 for code in out["rcpt"]):
        out["data"] = s.data(msg.encode())[0]
    s.quit()
except smtplib.SMTPResponseException as e:
    out["error"] = e.smtp_code
except (smtplib.SMTPServerDisconnected, OSError) as e:
    out["error"] = str(e)
print(json.dumps(out))
"""
    return json.loads(host(client).check_output(
        "python3 -c %s %s %s %s %s", script, sender, ",".join(rcpts), subject, BACKEND))


def stored_copies(subject, expected, timeout=120):
    """Messages with `subject` in the next hop's Maildir: {recipient (Delivered-To): full text}."""
    nexthop = host("mailman-nexthop")
    deadline = time.monotonic() + timeout
    copies = {}
    while time.monotonic() < deadline:
        files = nexthop.run("grep -l -F -- %s %s/* 2>/dev/null",
                            f"Subject: [dev] {subject}", NEXTHOP_MAILDIR)
        copies = {}
        for name in files.stdout.split():
            text = nexthop.check_output("cat %s", name)
            rcpt = re.search(r"^Delivered-To: (\S+)$", text, re.M).group(1)
            copies[rcpt] = text
        if len(copies) >= expected:
            break
        time.sleep(2)
    return copies


def run_playbook(playbook, *extra):
    return ansible_playbook(
        SCENARIO / playbook, *extra, env={"ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks"}
    )


def test_list_exists_with_owners_moderators_settings_and_members():
    lst = rest("lists/dev.lists.example.test")
    assert lst["fqdn_listname"] == "dev@lists.example.test"
    owners = {m["email"] for m in rest("lists/dev.lists.example.test/roster/owner")["entries"]}
    moderators = {m["email"] for m in rest("lists/dev.lists.example.test/roster/moderator")["entries"]}
    members = {m["email"] for m in rest("lists/dev.lists.example.test/roster/member")["entries"]}
    assert owners == {"owner@example.test"}
    assert moderators == {"moderator@example.test"}
    assert members == set(MEMBERS)
    config = rest("lists/dev.lists.example.test/config")
    assert config["subject_prefix"] == "[dev] "
    assert config["default_member_action"] == "accept"
    assert config["advertised"] is False
    assert config["max_message_size"] == 200
    assert rest("domains/lists.example.test")["description"] == "Lab lists"


def test_bulk_list_has_ten_thousand_members():
    page = rest("lists/bulk.lists.example.test/roster/member?count=1&page=1")
    assert page["total_size"] == 10000
    assert page["entries"][0]["email"].endswith("@bulk.example.test")


def test_mailman_runs_as_list_with_the_fixed_ids_on_postgresql():
    backend = host("mailman-backend")
    assert backend.user("list").uid == 38 and backend.group("list").gid == 38
    master = backend.check_output("cat /run/mailman3/master.pid")
    assert backend.check_output("ps -o user= -p %s", master) == "list"
    info = backend.check_output("runuser -u list -- mailman info")
    assert "db url: postgresql://mailman:" in info and f"@{BACKEND}:5432/mailman" in info


def test_post_from_mx_is_distributed_through_postfix_out_with_list_headers():
    subject = f"post-{uuid.uuid4().hex[:12]}"
    replies = smtp("mailman-mx", "alice@example.test", ["dev@lists.example.test"], subject)
    assert replies.get("rcpt") == [250] and replies.get("data") == 250, replies

    copies = stored_copies(subject, len(MEMBERS))
    assert set(copies) == set(MEMBERS)

    out_log = host("mailman-backend").check_output("cat /var/log/postfix-out*.log")
    for rcpt, text in copies.items():
        assert re.search(r"^List-Id: .*<dev\.lists\.example\.test>$", text, re.M | re.I)
        assert re.search(r"^List-Post: <mailto:dev@lists\.example\.test>", text, re.M)
        assert re.search(r"^List-Unsubscribe: ", text, re.M)
        assert re.search(r"^Return-Path: <dev-bounces(\+[^@]*)?@lists\.example\.test>", text, re.M)
        # The hop through postfix-out: its Received line (loopback client) and its queue ID in its own log.
        hop = re.search(r"by out\.mailman-backend\.example\.test \(Postfix\) with E?SMTP id (\w+)", text)
        assert hop, text
        assert re.search(r"from \S+ \(\S+ \[127\.0\.0\.1\]\)\s+by out\.mailman-backend", text)
        queue_id = hop.group(1)
        assert re.search(
            rf"{queue_id}: to=<{re.escape(rcpt)}>, "
            r"relay=172\.31\.15\.13\[172\.31\.15\.13\]:25, .*status=sent",
            out_log), f"{queue_id} not relayed by postfix-out"
    # postfix-out listens on 127.0.0.1:10025 only; Mailman's config points there.
    listeners = host("mailman-backend").check_output("ss -Hltn 'sport = :10025'")
    assert listeners.split()[3] == "127.0.0.1:10025" and len(listeners.splitlines()) == 1


def test_outsider_is_rejected_on_port_25():
    replies = smtp("mailman-outsider", "eve@example.test", ["dev@lists.example.test"], "outsider")
    assert "data" not in replies
    codes = replies.get("rcpt", []) + ([replies["error"]] if "error" in replies else [])
    assert codes and all(isinstance(c, int) and 500 <= c < 600 for c in codes), replies


def test_mx_cannot_relay_to_other_domains_or_unknown_list_addresses():
    replies = smtp("mailman-mx", "alice@example.test",
                   ["someone@elsewhere.test", "nolist@lists.example.test", "dev@lists.example.test"], "relay")
    assert replies["rcpt"][0] >= 500 and replies["rcpt"][1] >= 500 and replies["rcpt"][2] == 250, replies


@pytest.mark.parametrize("port", [8001, 8024])
def test_rest_and_lmtp_not_reachable_from_the_mx(port):
    mx = host("mailman-mx")
    result = mx.run(
        "python3 -c %s", f"import socket; socket.create_connection(('{BACKEND}', {port}), timeout=5)")
    assert result.rc != 0
    assert "Connection refused" in result.stderr or "timed out" in result.stderr


def test_lmtp_and_rest_listen_on_loopback_only():
    listening = host("mailman-backend").check_output("ss -Hltn '( sport = :8001 or sport = :8024 )'")
    local = sorted(line.split()[3] for line in listening.splitlines())
    assert local == ["127.0.0.1:8001", "127.0.0.1:8024"]


def test_adding_ten_thousand_members_takes_seconds(tmp_path):
    extra = tmp_path / "bulk2.json"
    members = [f"new{i:05d}@bulk.example.test" for i in range(10000)]
    bulk2 = {"name": "bulk2@lists.example.test", "members": members}
    extra.write_text(json.dumps({"mailman_core__host_lists": [bulk2]}))
    proc = run_playbook("reconfigure.yml", "-e", f"@{extra}")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert rest("lists/bulk2.lists.example.test/roster/member?count=1&page=1")["total_size"] == 10000
    # The list task's own time (profile_tasks): seconds, not minutes.
    took = re.search(r"Make domains and lists match the data -+ ([0-9.]+)s", proc.stdout)
    assert took and float(took.group(1)) < 60, proc.stdout[-2000:]


def wait_for_runners(backend, timeout=60):
    """After a restart: the LMTP runner accepts connections and every runner is up."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lmtp = backend.run(
            "python3 -c %s", "import socket; socket.create_connection(('127.0.0.1', 8024), timeout=2)")
        if lmtp.rc == 0 and "--runner=out:" in backend.check_output("ps -eo args"):
            return
        time.sleep(1)
    raise AssertionError("Mailman's runners did not come up")


def restarts(backend):
    log = backend.check_output("journalctl -u mailman3 --no-pager -o cat")
    return sum(1 for line in log.splitlines() if line.startswith("Started mailman3"))


def test_changed_max_recipients_and_out_runners_restart_mailman_once():
    backend = host("mailman-backend")
    before = restarts(backend)
    proc = run_playbook("reconfigure.yml", *RECONFIGURED)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert proc.stdout.count("RUNNING HANDLER [mailman_core : Restart Mailman]") == 1
    assert restarts(backend) == before + 1

    assert backend.check_output("runuser -u list -- mailman conf -s mta -k max_recipients").endswith("2")
    wait_for_runners(backend)
    runners = backend.check_output("ps -eo args").splitlines()
    outs = sorted(r.split("--runner=")[1].split()[0] for r in runners if "--runner=out:" in r)
    assert outs == ["out:0:2", "out:1:2"]

    # Applied: three members, at most two recipients per transaction: two postfix-out queue IDs.
    subject = f"split-{uuid.uuid4().hex[:12]}"
    replies = smtp("mailman-mx", "bob@example.test", ["dev@lists.example.test"], subject)
    assert replies.get("data") == 250, replies
    copies = stored_copies(subject, len(MEMBERS))
    assert set(copies) == set(MEMBERS)
    hop = r"by out\.mailman-backend\.example\.test \(Postfix\) with E?SMTP id (\w+)"
    ids = {re.search(hop, t).group(1) for t in copies.values()}
    assert len(ids) == 2

    # The same data again: nothing changes, no restart.
    proc = run_playbook("reconfigure.yml", *RECONFIGURED)
    assert proc.returncode == 0 and "changed=0" in proc.stdout, proc.stdout[-3000:]
    assert restarts(backend) == before + 1


def test_runner_count_not_a_power_of_two_is_refused_before_anything_changes():
    backend = host("mailman-backend")
    before = restarts(backend)
    config = backend.check_output("sha256sum /etc/mailman3/mailman.cfg")
    proc = run_playbook("reconfigure.yml", "-e", "mailman_core__out_runners=3")
    assert proc.returncode != 0
    assert "runner 'out': instances must be a power of two" in proc.stdout + proc.stderr
    assert restarts(backend) == before
    assert backend.check_output("sha256sum /etc/mailman3/mailman.cfg") == config
