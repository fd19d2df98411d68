"""roles/mailman_core on one host: lists as data in Mailman on PostgreSQL, a post through the primary
Postfix, LMTP, Mailman and postfix-out to the sink, the runner check and systemd's restart, and a
change of Mailman's settings through the playbook (last: it restarts Mailman)."""

import base64
import json
import os
import pathlib
import random
import re
import subprocess
import time
import uuid

import pytest
import testinfra
from support.mailman_runners import configured, master, runner_pids, running, wait_all_running, written
from support.molecule_playbook import ansible_playbook
from support.scenario import flat

SCENARIO = pathlib.Path(__file__).resolve().parents[1]
SECRET = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secret"
MEMBERS = ["alice@example.test", "bob@example.test", "carol@example.test"]
HOST = testinfra.get_host("docker://mcore-host")
DIFFERENTIAL = SCENARIO / "files" / "recipients_differential.py"
testinfra_hosts = ["docker://mcore-host"]


def rest(path):
    """GET on Mailman's REST API (on loopback: no web node uses it here)."""
    password = (SECRET / "mailman_core" / "rest.password").read_text().strip()
    token = base64.b64encode(f"restadmin:{password}".encode()).decode()
    script = (
        "import sys, urllib.request; r = urllib.request.Request(sys.argv[1], "
        "headers={'Authorization': 'Basic ' + sys.argv[2]}); print(urllib.request.urlopen(r).read().decode())"
    )
    return json.loads(
        HOST.check_output("python3 -c %s %s %s", script, f"http://127.0.0.1:8001/3.1/{path}", token)
    )


def post(subject, sender="alice@example.test", rcpt="dev@lists.core.test"):
    """A post handed to the primary Postfix on loopback, as an MX node hands one over."""
    message = f"From: {sender}\nTo: {rcpt}\nSubject: {subject}\n\nHello list.\n"
    HOST.run_expect([0], "printf '%%s' %s | sendmail -f %s %s", message, sender, rcpt)


def sunk(subject, expected, timeout=120):
    """The sink's copies of the post: {recipient: file text}, waited for until `expected` arrived."""
    deadline = time.monotonic() + timeout
    while True:
        out = HOST.run(f"grep -l 'Subject: \\[dev\\] {subject}' /var/tmp/sink/* 2>/dev/null").stdout.split()
        copies = {}
        for path in out:
            text = HOST.file(path).content_string
            # smtp-sink writes the envelope first: X-Mail-Args (MAIL FROM), one X-Rcpt-Args per RCPT TO.
            for rcpt in re.findall(r"^X-Rcpt-Args: <([^>]+)>", text, re.M):
                copies.setdefault(rcpt, []).append(text)
        if sum(len(v) for v in copies.values()) >= expected or time.monotonic() > deadline:
            return copies
        time.sleep(1)


def wait_for_rest():
    deadline = time.monotonic() + 90
    while HOST.run(
        "python3 -c %s", "import socket; socket.create_connection(('127.0.0.1', 8001), timeout=2)"
    ).rc:
        assert time.monotonic() < deadline, "Mailman's REST API did not come back"
        time.sleep(1)


def test_the_list_is_the_data():
    lst = rest("lists/dev.lists.core.test")
    assert lst["fqdn_listname"] == "dev@lists.core.test"
    roster = {
        r: {m["email"] for m in rest(f"lists/dev.lists.core.test/roster/{r}")["entries"]}
        for r in ("owner", "moderator", "member")
    }
    assert roster == {
        "owner": {"owner@example.test"},
        "moderator": {"moderator@example.test"},
        "member": set(MEMBERS),
    }
    config = rest("lists/dev.lists.core.test/config")
    assert (config["subject_prefix"], config["default_member_action"], config["max_message_size"]) == (
        "[dev] ",
        "accept",
        200,
    )
    assert rest("domains/lists.core.test")["description"] == "Core scenario lists"


def test_the_lists_archiver_records_exist_once_each_before_any_post():
    """Mailman makes them when first asked, and a list's first post asks from two runners at once: two
    of each, and every later post to the list is shunted. The plugin makes them with the list."""
    query = ("SELECT la.name, count(*) FROM listarchiver la JOIN mailinglist ml ON ml.id = la.mailing_list_id"
             " WHERE ml.list_id = 'dev.lists.core.test' GROUP BY la.name ORDER BY la.name")
    rows = HOST.check_output("runuser -u postgres -- psql -d mailman -tAc %s", query).split()
    # One per archiver of mailman.cfg, enabled or not: Mailman's three and HyperKitty's.
    assert rows == ["hyperkitty|1", "mail-archive|1", "mhonarc|1", "prototype|1"], rows


def test_mailman_runs_as_list_with_the_fixed_ids_on_postgresql():
    assert HOST.user("list").uid == 38 and HOST.group("list").gid == 38
    master = HOST.check_output("cat /run/mailman3/master.pid")
    assert HOST.check_output("ps -o user= -p %s", master) == "list"
    info = HOST.check_output("runuser -u list -- mailman info")
    assert "db url: postgresql://mailman:" in info and "@127.0.0.1:5432/mailman" in info


def test_a_post_goes_through_lmtp_mailman_and_postfix_out_once_per_member_with_the_list_headers():
    subject = f"post-{uuid.uuid4().hex[:12]}"
    post(subject)
    copies = sunk(subject, len(MEMBERS))
    time.sleep(3)  # a duplicate would arrive now
    copies = sunk(subject, len(MEMBERS), timeout=0)
    assert {rcpt: len(texts) for rcpt, texts in copies.items()} == dict.fromkeys(MEMBERS, 1)
    for texts in copies.values():
        text = texts[0]
        assert re.search(r"^List-Id: .*<dev\.lists\.core\.test>$", text, re.M | re.I)
        assert re.search(r"^List-Post: <mailto:dev@lists\.core\.test>", text, re.M)
        assert re.search(r"^X-Mail-Args: <dev-bounces(\+[^@]*)?@lists\.core\.test>", text, re.M)
        # The hop through postfix-out, whose Received line names its loopback client.
        assert re.search(r"from \S+ \(\S+ \[127\.0\.0\.1\]\)\s+by \S+ \(Postfix\)", text), text


def differential(*args):
    """Run files/recipients_differential.py in the real Mailman of the host: (exit status, its report)."""
    script = "/tmp/recipients_differential.py"
    subprocess.run(["docker", "cp", str(DIFFERENTIAL), f"mcore-host:{script}"], check=True)
    result = HOST.run(f"runuser -u list -- python3 {script} /etc/mailman3/mailman.cfg {' '.join(args)}")
    assert result.stdout.strip(), result.stderr
    return result.rc, json.loads(result.stdout)


def test_the_lists_use_the_plugins_posting_pipeline_by_default():
    """The role's default for lists that name none: the post of the test above took this pipeline."""
    assert rest("lists/dev.lists.core.test/config")["posting_pipeline"] == "mailstack-posting-pipeline"


def test_the_plugins_pipeline_gives_every_random_population_what_mailmans_own_gives():
    """Recipients, metadata and the whole message of both pipelines, on 12 random lists (4 posts each),
    rolled back afterwards. A new seed each run; a failure names it (rerun with --seed)."""
    seed = random.randrange(1_000_000)
    rc, report = differential("--seed", str(seed), "--populations", "12")
    assert report["mismatches"] == [], f"seed {seed}: {report['mismatches']}"
    assert rc == 0 and report["cases"] == 48
    coverage = report["coverage"]
    rules = [f"effective delivery_status {s}" for s in ("enabled", "by_user", "by_bounces", "by_moderator")]
    rules += [f"effective delivery_mode {m}"
              for m in ("regular", "plaintext_digests", "mime_digests", "summary_digests")]
    rules += [f"{p} set on the {level}"
              for p in ("delivery_status", "delivery_mode", "receive_own_postings", "receive_list_copy")
              for level in ("member", "address", "user")]
    rules += ["effective receive_own_postings False", "effective receive_list_copy False",
              "subscribed as address", "subscribed as linked address", "subscribed as user",
              "a user with two addresses subscribed", "an owner or moderator who is also a member",
              "a banned member", "an address in mixed case", "recipients",
              "a member named in To or Cc who wants no list copy",
              "a post from a member who wants no copy of their own"]
    assert {rule: coverage.get(rule, 0) for rule in rules if not coverage.get(rule)} == {}, f"seed {seed}"
    assert coverage["copies compared"] > 100


def test_the_comparison_fails_when_the_plugin_drops_a_delivery_status_rule():
    """--mutant: members disabled by bounces get the plugin's copy; the comparison must see it."""
    rc, report = differential("--seed", "1", "--populations", "3", "--mutant")
    assert rc == 1 and report["mismatches"]
    assert all(m["fields"] == ["recipients"] and m["only plugin"] and not m["only stock"]
               for m in report["mismatches"])


def test_lmtp_rest_and_postfix_out_listen_on_loopback_only():
    listening = HOST.check_output("ss -Hltn '( sport = :8001 or sport = :8024 or sport = :10025 )'")
    assert sorted(line.split()[3] for line in listening.splitlines()) == [
        "127.0.0.1:10025",
        "127.0.0.1:8001",
        "127.0.0.1:8024",
    ]


def test_a_runner_that_died_is_started_again_by_the_runner_check():
    """Mailman's master does not restart a runner that crashed; the role's timer restarts Mailman."""
    expected = configured(HOST)
    assert written(HOST) == written(HOST, "/run/mailman3/mailstack-runners") == expected
    pid, missing = wait_all_running(HOST, expected, timeout=60)
    assert not missing, f"before the kill: {sorted(missing)} not running"
    since = HOST.check_output("date +%s")
    HOST.check_output(f"pkill -KILL -P {pid} -f 'runner=bounces:0:1'")
    time.sleep(5)
    assert "bounces:0:1" not in running(HOST, pid), "Mailman's master started the runner again itself"
    # The timer's interval (10 s in this scenario) and the check's two looks (10 s) before the restart.
    new, missing = wait_all_running(HOST, expected, timeout=150)
    assert new != pid and not missing, f"master {pid} -> {new}, missing {sorted(missing)}"
    log = HOST.check_output(f"journalctl -u mailman3-runners --since @{since} --no-pager -o cat")
    assert f"(pid {pid}) lost its runner(s) bounces:0:1 and does not restart crashed runners" in log, log
    wait_for_rest()


def test_a_master_that_died_is_started_again_by_systemd():
    """Debian's unit leaves a dead master dead; the role's drop-in (Restart=on-failure) does not."""
    expected = configured(HOST)
    pid, missing = wait_all_running(HOST, expected, timeout=60)
    assert not missing, f"before the kill: {sorted(missing)} not running"
    HOST.check_output(f"kill -KILL {pid}")
    new, missing = wait_all_running(HOST, expected, timeout=90)
    assert new not in (0, pid) and not missing, f"master {pid} -> {new}, missing {sorted(missing)}"
    assert HOST.check_output("systemctl show --property=NRestarts --value mailman3") != "0"
    wait_for_rest()


QUEUE = "/var/lib/mailman3/queue"


def queued(name: str) -> int:
    return int(HOST.check_output(f"find {QUEUE}/{name} -type f | wc -l"))


def test_a_restart_while_a_post_is_being_delivered_lets_it_finish_instead_of_shunting_it():
    """The out runner waits on postfix-out's answer to DATA (a slow sink listens in its place) when
    mailman3 is restarted: it sends the post once, then stops; Mailman's own runner shunts it."""
    expected = configured(HOST)
    wait_all_running(HOST, expected, timeout=60)
    subject = f"slowstop-{uuid.uuid4().hex[:12]}"
    HOST.check_output("systemctl stop postfix@postfix-out")
    try:
        HOST.check_output("install -d -m 1777 /var/tmp/slow && rm -f /var/tmp/slow/*")
        # smtp-sink -w 20: 20 s before it answers DATA.
        HOST.check_output(
            "systemd-run --collect --unit mailstack-slow-sink /usr/sbin/smtp-sink -u nobody -w 20 "
            "-d /var/tmp/slow/msg. 127.0.0.1:10025 10"
        )
        post(subject)
        deadline = time.monotonic() + 60
        while HOST.run("ss -tnH state established '( dport = :10025 )' | grep -q .").rc != 0:
            assert time.monotonic() < deadline, "Mailman's out runner never connected to the slow sink"
            time.sleep(0.5)
        t0 = time.monotonic()
        HOST.check_output("systemctl restart mailman3")
        took = time.monotonic() - t0
        # Let a shunted post, or a second copy from a recovered queue file, show up.
        wait_all_running(HOST, expected, timeout=90)
        time.sleep(5)
        sent = HOST.run("cat /var/tmp/slow/msg.* 2>/dev/null").stdout
    finally:
        HOST.run("systemctl stop mailstack-slow-sink")
        HOST.check_output("systemctl start postfix@postfix-out")
    log = HOST.check_output("tail -n 200 /var/log/mailman3/mailman.log")
    assert queued("shunt") == 0 and "SHUNTING" not in log, log
    assert sent.count(f"Subject: [dev] {subject}") == 1, sent
    assert sorted(re.findall(r"^X-Rcpt-Args: <([^>]+)>", sent, re.M)) == sorted(MEMBERS), sent
    assert "out runner caught signal 15 while working" in log
    assert took > 10, f"the restart took {took:.0f} s: it did not wait for the delivery"
    wait_for_rest()


def test_with_the_database_stopped_a_queued_post_waits_and_every_runner_stays():
    """A post waits in Mailman's in queue (its runner held with SIGSTOP) while PostgreSQL stops; let
    go, the runner leaves it queued, the bounces and task runners keep running, and once the
    database is back the post goes out once per member. Mailman's own runners shunt the post
    (the list lookup fails) and lose the bounces runner."""
    expected = configured(HOST)
    wait_all_running(HOST, expected, timeout=60)
    before, master_before = runner_pids(HOST), master(HOST)
    subject = f"dbwait-{uuid.uuid4().hex[:12]}"
    runner_in = before["in:0:1"]
    HOST.check_output(f"kill -STOP {runner_in}")
    try:
        post(subject)
        deadline = time.monotonic() + 60
        while queued("in") == 0:
            assert time.monotonic() < deadline, "the post never reached Mailman's in queue"
            time.sleep(0.5)
        HOST.check_output("systemctl stop postgresql@15-main")
    finally:
        HOST.check_output(f"kill -CONT {runner_in}")
    try:
        time.sleep(25)  # the runners' passes (1 s) and two looks of the runner check (10 s apart)
        waiting, shunted, during = queued("in"), queued("shunt"), runner_pids(HOST)
        early = sunk(subject, 1, timeout=0)
    finally:
        HOST.check_output("systemctl start postgresql@15-main")
    assert (waiting, shunted) == (1, 0), f"in {waiting}, shunt {shunted} with the database down"
    assert during == before and master(HOST) == master_before, f"{before} -> {during}"
    assert not early
    copies = sunk(subject, len(MEMBERS))
    time.sleep(3)
    copies = sunk(subject, len(MEMBERS), timeout=0)
    assert {rcpt: len(texts) for rcpt, texts in copies.items()} == dict.fromkeys(MEMBERS, 1)
    assert queued("in") == queued("shunt") == 0
    log = HOST.check_output("tail -n 200 /var/log/mailman3/mailman.log")
    assert "in runner: queued messages wait, the database does not answer" in log
    assert "in runner: the database answers again" in log


MARKER = "/var/lib/mailman3/mailstack-active"


def result(unit: str) -> str:
    return HOST.check_output(f"systemctl show -p Result --value {unit}")


def test_the_periodic_jobs_and_mailman_run_only_where_mailman_runs_and_the_shared_data_says():
    """Debian's cron jobs (which run on a standby too) are gone; each job has an enabled timer at its
    time. A job runs while Mailman runs here and the shared data's marker names this host, and is
    skipped otherwise; Mailman itself does not start on data the marker gives to another back-end
    (a start refused by systemd, not by Ansible), and the runner check stops a Mailman that still runs
    on it (a back-end cut off during a failover, back again)."""
    assert not HOST.file("/etc/cron.d/mailman3").exists
    for job, when in (("notify", "08:00:00"), ("digests", "12:00:00")):
        timer = HOST.service(f"mailman3-{job}.timer")
        assert timer.is_enabled and timer.is_running, job
        assert when in HOST.check_output(f"systemctl show -p TimersCalendar --value mailman3-{job}.timer")

    def run(job: str) -> str:
        """Start the job's service as its timer does (a oneshot: back when done), then its result."""
        HOST.check_output(f"systemctl start mailman3-{job}.service")
        return result(f"mailman3-{job}.service")

    expected = configured(HOST)
    assert HOST.file(MARKER).content_string == "mcore-host\n"
    # Mailman stopped here, the data ours: skipped (the job would run on a standby otherwise).
    HOST.check_output("systemctl stop mailman3")
    try:
        assert [run(job) for job in ("notify", "digests")] == ["exec-condition", "exec-condition"]
        skipped = HOST.check_output("journalctl -u mailman3-digests.service --no-pager -o cat -n 5")
        assert "Skipped due to 'exec-condition'" in skipped, skipped
    finally:
        HOST.check_output("systemctl start mailman3")
    _, missing = wait_all_running(HOST, expected, timeout=90)
    assert not missing, f"after the start: {sorted(missing)} not running"

    # Mailman running, the data given to another back-end (a failover while this host was cut off).
    since = HOST.check_output("date +%s")
    HOST.check_output(f"echo list-other > {MARKER}")
    try:
        assert run("digests") == "exec-condition"
        # The runner check (every 10 s here) stops Mailman; systemd then refuses every start.
        deadline = time.monotonic() + 60
        while HOST.service("mailman3").is_running and time.monotonic() < deadline:
            time.sleep(2)
        log = HOST.check_output(f"journalctl -u mailman3-runners --since @{since} --no-pager -o cat")
        fenced = f"the shared data belongs to list-other ({MARKER}), not to mcore-host: stopping mailman3"
        assert fenced in log, log
        assert not HOST.service("mailman3").is_running
        HOST.check_output("systemctl start mailman3")
        assert (HOST.service("mailman3").is_running, result("mailman3")) == (False, "exec-condition")
        refused = HOST.check_output(f"journalctl -u mailman3 --since @{since} --no-pager -o cat")
        assert "the shared data belongs to list-other" in refused and "Mailman does not run here" in refused
        HOST.check_output("systemctl start mailman3-runners.service")  # the check restarts nothing
        assert not HOST.service("mailman3").is_running
    finally:
        HOST.check_output(f"echo mcore-host > {MARKER}")
    HOST.check_output("systemctl start mailman3")
    _, missing = wait_all_running(HOST, expected, timeout=90)
    assert not missing, f"after the start: {sorted(missing)} not running"
    assert [run(job) for job in ("notify", "digests")] == ["success", "success"]
    wait_for_rest()


def test_a_runner_count_not_a_power_of_two_is_refused_before_anything_changes():
    before = HOST.file("/etc/mailman3/mailman.cfg").sha256sum
    run = ansible_playbook(SCENARIO / "converge.yml", "-e", "mailman_core__out_runners=3")
    assert run.returncode != 0
    assert (
        "mailman_runners: runner 'out': instances must be a power of two (1, 2, 4, 8, ...), got 3"
        in flat(run.stdout)
    )
    assert HOST.file("/etc/mailman3/mailman.cfg").sha256sum == before


def restarts():
    log = HOST.check_output("journalctl -u mailman3 --no-pager -o cat")
    return sum(1 for line in log.splitlines() if line.startswith("Started mailman3"))


@pytest.fixture(scope="module")
def reconfigured():
    """One run with max_recipients and out runners changed: (its output, Mailman's starts before)."""
    before = restarts()
    run = ansible_playbook(SCENARIO / "converge.yml", *RECONFIGURED)
    assert run.returncode == 0, run.stdout[-3000:]
    wait_for_rest()
    return run.stdout, before


# And a runner sleep no post could wait out: test_with_a_two_minute_runner_sleep_a_post_still_goes_at_once.
RECONFIGURED = ("-e", "mailman_core__max_recipients=2", "-e", "mailman_core__out_runners=2",
                "-e", "mailman_core__runner_sleep_time=120s")


def test_changed_max_recipients_and_out_runners_restart_mailman_once(reconfigured):
    output, before = reconfigured
    assert output.count("RUNNING HANDLER [mailman_core : Restart Mailman]") == 1, output[-3000:]
    assert restarts() == before + 1
    assert HOST.check_output("runuser -u list -- mailman conf -s mta -k max_recipients").endswith("2")
    _, missing = wait_all_running(HOST, configured(HOST), timeout=90)
    assert not missing, f"Mailman's runners {sorted(missing)} did not come up"
    assert sorted(r for r in running(HOST) if r.startswith("out:")) == ["out:0:2", "out:1:2"]
    # The runner check expects the new set: the file and the copy the restarted master took.
    assert written(HOST) == written(HOST, "/run/mailman3/mailstack-runners") == configured(HOST)

    # Applied: three members, at most two recipients per transaction: two transactions at the sink.
    subject = f"split-{uuid.uuid4().hex[:12]}"
    post(subject, sender="bob@example.test")
    copies = sunk(subject, len(MEMBERS))
    assert {rcpt: len(texts) for rcpt, texts in copies.items()} == dict.fromkeys(MEMBERS, 1)
    assert len({texts[0] for texts in copies.values()}) == 2

    # The same data again: nothing changes, no restart; by now the runner check ran at least once
    # (every 10 s here) since the restart, and did not restart Mailman either.
    again = ansible_playbook(SCENARIO / "converge.yml", *RECONFIGURED)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
    assert restarts() == before + 1

    def monotonic(prop, unit):
        return int(HOST.check_output(f"systemctl show --property={prop} --value {unit}"))

    checked = monotonic("ExecMainStartTimestampMonotonic", "mailman3-runners.service")
    assert checked > monotonic("ActiveEnterTimestampMonotonic", "mailman3"), "no check since the restart"


def test_with_a_two_minute_runner_sleep_a_post_still_goes_at_once(reconfigured):
    """Mailman's runners sleep sleep_time on an empty queue: a post would wait up to that long at each
    of in, pipeline and out (up to 6 minutes here). The steady runners wait on their queue directory
    and wake when a message is queued (files/mailstack_runners.py)."""
    sleep = HOST.check_output("runuser -u list -- mailman conf -s runner.pipeline -k sleep_time")
    assert sleep.endswith("120s"), sleep
    subject = f"awake-{uuid.uuid4().hex[:12]}"
    post(subject)
    copies = sunk(subject, len(MEMBERS), timeout=30)
    assert {rcpt: len(texts) for rcpt, texts in copies.items()} == dict.fromkeys(MEMBERS, 1)
