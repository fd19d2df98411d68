"""molecule/web, the list back-end: lists as data, real SMTP through Mailman, postfix-out and the relay.

roles/mailman_core with postgresql and postfix, as playbooks/mailman_core.yml runs them. The client
stands in for an MX node; the relay (web-nexthop) stores every copy it gets.
"""

import re
import time
import uuid

import pytest
from web_scenario import (
    BACKEND,
    MEMBERS,
    NEXTHOP,
    configured,
    host,
    rest,
    running,
    smtp,
    stored,
    wait_all_running,
    written,
)


def stored_copies(subject, expected, timeout=120):
    return stored(f"Subject: [dev] {subject}", expected, timeout)


def test_list_exists_with_owners_moderators_settings_and_members():
    lst = rest("lists/dev.lists.web.test")
    assert lst["fqdn_listname"] == "dev@lists.web.test"
    owners = {m["email"] for m in rest("lists/dev.lists.web.test/roster/owner")["entries"]}
    moderators = {m["email"] for m in rest("lists/dev.lists.web.test/roster/moderator")["entries"]}
    members = {m["email"] for m in rest("lists/dev.lists.web.test/roster/member")["entries"]}
    assert owners == {"owner@example.test"}
    assert moderators == {"moderator@example.test"}
    assert members == set(MEMBERS)
    config = rest("lists/dev.lists.web.test/config")
    assert config["subject_prefix"] == "[dev] "
    assert config["default_member_action"] == "accept"
    assert config["max_message_size"] == 200
    assert rest("domains/lists.web.test")["description"] == "Web scenario lists"


def test_bulk_list_has_ten_thousand_members():
    page = rest("lists/bulk.lists.web.test/roster/member?count=1&page=1")
    assert page["total_size"] == 10000
    assert rest("lists/bulk.lists.web.test/config")["advertised"] is False
    assert page["entries"][0]["email"].endswith("@bulk.example.test")


def test_mailman_runs_as_list_with_the_fixed_ids_on_postgresql():
    backend = host("web-backend")
    assert backend.user("list").uid == 38 and backend.group("list").gid == 38
    master = backend.check_output("cat /run/mailman3/master.pid")
    assert backend.check_output("ps -o user= -p %s", master) == "list"
    info = backend.check_output("runuser -u list -- mailman info")
    assert "db url: postgresql://mailman:" in info and f"@{BACKEND}:5432/mailman" in info


def test_post_from_mx_is_distributed_through_postfix_out_with_list_headers():
    subject = f"post-{uuid.uuid4().hex[:12]}"
    replies = smtp("web-client", "alice@example.test", ["dev@lists.web.test"], subject)
    assert replies.get("rcpt") == [250] and replies.get("data") == 250, replies

    copies = stored_copies(subject, len(MEMBERS))
    assert set(copies) == set(MEMBERS)

    out_log = host("web-backend").check_output("cat /var/log/postfix-out*.log")
    for rcpt, text in copies.items():
        assert re.search(r"^List-Id: .*<dev\.lists\.web\.test>$", text, re.M | re.I)
        assert re.search(r"^List-Post: <mailto:dev@lists\.web\.test>", text, re.M)
        assert re.search(r"^List-Unsubscribe: ", text, re.M)
        assert re.search(r"^Return-Path: <dev-bounces(\+[^@]*)?@lists\.web\.test>", text, re.M)
        # The hop through postfix-out: its Received line (loopback client) and its queue ID in its own log.
        hop = re.search(r"by out\.web-backend\.web\.test \(Postfix\) with E?SMTP id (\w+)", text)
        assert hop, text
        assert re.search(r"from \S+ \(\S+ \[127\.0\.0\.1\]\)\s+by out\.web-backend", text)
        queue_id = hop.group(1)
        assert re.search(
            rf"{queue_id}: to=<{re.escape(rcpt)}>, "
            rf"relay={re.escape(NEXTHOP)}\[{re.escape(NEXTHOP)}\]:25, .*status=sent",
            out_log), f"{queue_id} not relayed by postfix-out"
    # postfix-out listens on 127.0.0.1:10025 only; Mailman's config points there.
    listeners = host("web-backend").check_output("ss -Hltn 'sport = :10025'")
    assert listeners.split()[3] == "127.0.0.1:10025" and len(listeners.splitlines()) == 1


def test_port_25_takes_list_mail_from_the_mx_tier_only():
    """The firewall drops everyone but the MX tier (here the client) on port 25; behind it, Postfix
    refuses any client outside its mynetworks (tried from the back-end's own address, which the
    firewall lets through)."""
    replies = smtp("web-proxy", "eve@example.test", ["dev@lists.web.test"], "outsider")
    assert "data" not in replies and "timed out" in str(replies.get("error")), replies

    replies = smtp("web-backend", "eve@example.test", ["dev@lists.web.test"], "outsider", source=BACKEND)
    assert "data" not in replies
    codes = replies.get("rcpt", []) + ([replies["error"]] if "error" in replies else [])
    assert codes and all(isinstance(c, int) and 500 <= c < 600 for c in codes), replies


def test_mx_cannot_relay_to_other_domains_or_unknown_list_addresses():
    replies = smtp("web-client", "alice@example.test",
                   ["someone@elsewhere.test", "nolist@lists.web.test", "dev@lists.web.test"], "relay")
    assert replies["rcpt"][0] >= 500 and replies["rcpt"][1] >= 500 and replies["rcpt"][2] == 250, replies


@pytest.mark.parametrize("port", [8001, 8024])
def test_rest_and_lmtp_not_reachable_from_the_mx(port):
    mx = host("web-client")
    result = mx.run(
        "python3 -c %s", f"import socket; socket.create_connection(('{BACKEND}', {port}), timeout=5)")
    assert result.rc != 0
    assert "Connection refused" in result.stderr or "timed out" in result.stderr


def test_lmtp_listens_on_loopback_and_rest_on_the_internal_address_for_the_web_nodes():
    listening = host("web-backend").check_output("ss -Hltn '( sport = :8001 or sport = :8024 )'")
    local = sorted(line.split()[3] for line in listening.splitlines())
    assert local == ["127.0.0.1:8024", f"{BACKEND}:8001"]
    # ...where the firewall admits the web nodes only (the client is refused above).
    probe = f"import socket; socket.create_connection(('{BACKEND}', 8001), timeout=5)"
    assert host("web-web2").run("python3 -c %s", probe).rc == 0


def test_a_runner_that_died_is_started_again_by_the_runner_check():
    """Mailman's master does not restart a runner that crashed; the role's timer restarts Mailman."""
    backend = host("web-backend")
    expected = configured(backend)
    assert written(backend) == written(backend, "/run/mailman3/mailstack-runners") == expected
    pid, missing = wait_all_running(backend, expected, timeout=60)
    assert not missing, f"before the kill: {sorted(missing)} not running"
    since = backend.check_output("date +%s")
    backend.check_output(f"pkill -KILL -P {pid} -f 'runner=bounces:0:1'")
    time.sleep(5)
    assert "bounces:0:1" not in running(backend, pid), "Mailman's master started the runner again itself"
    # The timer's interval (30 s) and the check's two looks (10 s) before the restart.
    new, missing = wait_all_running(backend, expected, timeout=150)
    assert new != pid and not missing, f"master {pid} -> {new}, missing {sorted(missing)}"
    log = backend.check_output(f"journalctl -u mailman3-runners --since @{since} --no-pager -o cat")
    assert f"(pid {pid}) lost its runner(s) bounces:0:1 and does not restart crashed runners" in log, log
    wait_for_rest(backend)


def test_a_master_that_died_is_started_again_by_systemd():
    """Debian's unit leaves a dead master dead; the role's drop-in (Restart=on-failure) does not."""
    backend = host("web-backend")
    expected = configured(backend)
    pid, missing = wait_all_running(backend, expected, timeout=60)
    assert not missing, f"before the kill: {sorted(missing)} not running"
    backend.check_output(f"kill -KILL {pid}")
    new, missing = wait_all_running(backend, expected, timeout=90)
    assert new not in (0, pid) and not missing, f"master {pid} -> {new}, missing {sorted(missing)}"
    assert backend.check_output("systemctl show --property=NRestarts --value mailman3") != "0"
    wait_for_rest(backend)


def wait_for_rest(backend):
    """Mailman answers again (and the later tests can use its REST API)."""
    deadline = time.monotonic() + 60
    probe = f"import socket; socket.create_connection(('{BACKEND}', 8001), timeout=2)"
    while backend.run("python3 -c %s", probe).rc != 0:
        assert time.monotonic() < deadline, "Mailman's REST API did not come back"
        time.sleep(1)
    assert rest("lists/dev.lists.web.test")["fqdn_listname"] == "dev@lists.web.test"
