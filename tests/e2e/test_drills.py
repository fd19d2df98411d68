"""Fault drills: a part of the site fails while mail is sent from the internet host; after it
comes back, every member has exactly one copy of every post and every Postfix queue is empty.

Senders behave as mail servers do (e2e.deliver: the MX hosts in order of preference; a 4xx or no
answer means "try the next one, and again later"). Other drills are in test_relays.py (a relay
stopped mid-delivery) and test_backends.py (the active back-end failed over to the standby).
"""

import re
import time
import uuid

import pytest
from ansible_collections.mailstack.site.plugins.plugin_utils.addresses import numbered_addresses
from e2e import copies, deliver, exactly_once, mx_hosts
from support.mailman_runners import configured, wait_all_running
from test_lab import HOSTVARS, REMOTE_DOMAINS, group, lab_host
from test_web import PROXY, SITE, fetch

LIST = "announce@lists.mailstack.test"
MEMBERS = {"alice@remote-a.test", "bob@remote-a.test", "carol@remote-b.test", "dave@remote-b.test"}
BULK = "bulk@lists.mailstack.test"
BULK_MEMBERS = set(numbered_addresses("member", 1000, REMOTE_DOMAINS))
MXS = group("mx")
ACTIVE = next(h for h in group("mailman_core") if HOSTVARS[h].get("mailstack__active_backend"))
DB = group("db")[0]
WEB = group("mailman_web")


def token(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:12]}"


def deliver_with_retries(list_address: str, tok: str, every: float = 10, timeout: float = 240) -> list[str]:
    """Retry as a sending server does until an MX accepts; every attempt's outcome."""
    deadline = time.monotonic() + timeout
    attempts: list[str] = []
    while True:
        mx, tried = deliver(list_address, tok)
        attempts += tried
        if mx is not None or time.monotonic() > deadline:
            assert mx is not None, attempts
            return attempts
        time.sleep(every)


def wait_for(what: str, check, timeout: float = 120, every: float = 1) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(every)


def listening(host: str, port: int) -> bool:
    return bool(lab_host(host).run(f"ss -Hltn 'sport = :{port}'").stdout.strip())


@pytest.mark.parametrize(
    ("service", "units", "port"),
    [
        ("rspamd", ["rspamd.service"], 11332),
        ("clamd", ["clamav-daemon.socket", "clamav-daemon.service"], None),
    ],
)
def test_a_scanner_stopped_on_every_mx_defers_and_the_retry_is_delivered_once(service, units, port, figure):
    """Nothing passes unscanned: with the scanner down every MX answers 4xx; once it is back, the
    sender's next retry is accepted and every member gets one copy."""
    tok = token(service)
    try:
        for mx in MXS:
            lab_host(mx).check_output(f"systemctl stop {' '.join(units)}")
        mx, tried = deliver(LIST, tok)
        figure(f"{service} stopped on {', '.join(MXS)}: " + "; ".join(tried))
        assert mx is None
        assert len(tried) == len(MXS) and all(re.search(r": \w+ 4\d\d ", t) for t in tried), tried
    finally:
        for mx in MXS:
            lab_host(mx).check_output(f"systemctl start {' '.join(reversed(units))}")
    if port:
        for mx in MXS:
            wait_for(f"{service} on {mx}", lambda mx=mx: listening(mx, port))
    t0 = time.monotonic()
    attempts = deliver_with_retries(LIST, tok)
    figure(f"{service} started again: accepted after {time.monotonic() - t0:.0f} s ({'; '.join(attempts)})")
    exactly_once(tok, MEMBERS, f"post deferred while {service} was down", figure)


def test_one_mx_stopped_the_other_takes_the_mail(figure):
    down = mx_hosts()[0].split(".")[0]
    tok = token("mxdown")
    try:
        lab_host(down).check_output("systemctl stop postfix@-")
        mx, tried = deliver(LIST, tok)
        figure(f"{down} stopped: " + "; ".join(tried))
        assert mx is not None and not mx.startswith(down + "."), tried
    finally:
        lab_host(down).check_output("systemctl start postfix@-")
    exactly_once(tok, MEMBERS, f"post while {down} was stopped", figure)
    wait_for(f"port 25 on {down}", lambda: listening(down, 25))


def test_postfix_out_restarted_with_a_post_in_its_queue(figure):
    """postfix-out holds a post to 1,000 members (its deliveries deferred) and is restarted; the
    post then goes out once to each member."""
    backend = lab_host(ACTIVE)
    out = "postmulti -i postfix-out -x"
    tok = token("pfout")
    try:
        backend.check_output(f"{out} postconf -e defer_transports=smtp && postmulti -i postfix-out -p reload")
        mx, tried = deliver(BULK, tok)
        assert mx is not None, tried

        def held() -> bool:
            mailman_out = int(backend.check_output("find /var/lib/mailman3/queue/out -type f | wc -l"))
            return mailman_out == 0 and "deferred" in backend.run(f"{out} postqueue -j").stdout

        wait_for("the post in postfix-out's deferred queue", held, timeout=240)
        queued = len(backend.check_output(f"{out} postqueue -j").splitlines())
        recipients = backend.check_output(
            f"{out} postqueue -j | python3 -c 'import json,sys; "
            'print(sum(len(json.loads(l)["recipients"]) for l in sys.stdin))\''
        )
    finally:
        backend.check_output(f"{out} postconf -X defer_transports")
    assert queued > 0 and int(recipients) == len(BULK_MEMBERS), (queued, recipients)
    backend.check_output("systemctl restart postfix@postfix-out")
    figure(f"postfix-out restarted holding {queued} messages for {recipients} recipients")
    # Nothing forces the delivery: postfix-out's own retry of its deferred queue (the lab's backoff,
    # inventories/lab/group_vars/mailman_core/postfix.yml) sends the post out.
    exactly_once(tok, BULK_MEMBERS, "post held by postfix-out, sent by its retry after the restart", figure)


def test_mailman_restarted_while_it_hands_a_post_out(figure):
    """Mailman is restarted the moment its out runner takes a post to 1,000 members (the queue
    entry becomes .bak while it is delivered to postfix-out)."""
    backend = lab_host(ACTIVE)
    tok = token("mmrestart")
    watcher = (
        "timeout 300 sh -c 'until ls /var/lib/mailman3/queue/out/*.bak >/dev/null 2>&1; "
        "do sleep 0.02; done; date +%s.%N; systemctl restart mailman3; date +%s.%N' "
        ">/run/e2e-mailman-restart 2>&1 &"
    )
    stale = backend.run("ls /var/lib/mailman3/queue/out/").stdout.split()
    assert not [f for f in stale if f.endswith(".bak")], f"a post is already being handed out: {stale}"
    backend.check_output(f"rm -f /run/e2e-mailman-restart; {watcher}")
    mx, tried = deliver(BULK, tok)
    assert mx is not None, tried

    # A post that reaches the back-end while Mailman is down waits in its Postfix (LMTP refused).
    def restart_begun() -> bool:
        return bool(backend.file("/run/e2e-mailman-restart").content_string.strip())

    wait_for("the restart to begin", restart_begun, every=0.2)
    wait_for("Mailman's LMTP runner to stop", lambda: not listening(ACTIVE, 8024), every=0.2)
    during = token("mmdown")
    mx, tried = deliver(LIST, during)
    assert mx is not None, tried
    wait_for(
        "the restart",
        lambda: len(backend.file("/run/e2e-mailman-restart").content_string.split()) >= 2,
        timeout=300,
    )
    started, done = map(float, backend.file("/run/e2e-mailman-restart").content_string.split()[:2])
    # What postfix-out had taken of the post when the restart began: its journal's recipients of the
    # post's queue files (cleanup logs the message-id, qmgr the recipients), stamped before `started`.
    log = backend.check_output("journalctl -u postfix@postfix-out --no-pager -o short-unix")
    ids = {m[1] for m in re.finditer(rf"([0-9A-Za-z]+): message-id=<{re.escape(tok)}@", log)}
    qmgr = re.compile(r"^([\d.]+) \S+ \S+: ([0-9A-Za-z]+): from=<[^>]*>, size=\d+, nrcpt=(\d+)", re.M)
    handed = sum(int(m[3]) for m in qmgr.finditer(log) if m[2] in ids and float(m[1]) < started)
    figure(
        f"mailman3 restarted while its out runner held the post ({done - started:.1f} s to restart); "
        f"postfix-out had {handed} of its {len(BULK_MEMBERS)} recipients when the restart began"
    )
    assert handed < len(BULK_MEMBERS), "the hand-out was over before the restart: nothing was interrupted"
    # Mailman takes mail again once its LMTP runner listens (systemd calls it active earlier).
    wait_for("Mailman's LMTP runner", lambda: listening(ACTIVE, 8024))
    exactly_once(tok, BULK_MEMBERS, "post being handed out when Mailman restarted", figure)
    # The back-end's Postfix retries within a minute (profile list_inbound), not Postfix's 5.
    queue_ids = backend.check_output(
        f"journalctl -u postfix@- --no-pager -o cat | grep -F 'message-id=<{during}@' | cut -d: -f1"
    ).split()
    log = backend.check_output("journalctl -u postfix@- --no-pager -o cat")
    deferred = [
        line for line in log.splitlines() if line.split(":")[0] in queue_ids and "status=deferred" in line
    ]
    figure(f"a post that arrived during the restart was deferred {len(deferred)} times by {ACTIVE}'s Postfix")
    exactly_once(during, MEMBERS, "post that arrived while Mailman restarted", figure, timeout=120)
    assert deferred, "the post reached Mailman without waiting: the retry was not tested"


def test_the_database_restarted_mail_still_flows(figure):
    """PostgreSQL's postmaster is stopped (the cluster's own unit, not the umbrella one), a post sent
    meanwhile waits (no copy leaves), and after the start it and a later post reach every member
    once, nothing shunted (exactly_once counts Mailman's queues); every runner runs afterwards (the
    steady runners wait for the database; were one lost, the role's runner check restarts Mailman:
    the figure counts its restarts)."""
    db, backend = lab_host(DB), lab_host(ACTIVE)
    unit = db.check_output("systemctl list-units 'postgresql@*' --plain --no-legend | awk '{print $1}'")
    since = backend.check_output("date +%s")
    before = db.check_output(f"systemctl show -p MainPID --value {unit}")
    down = token("dbdown")
    try:
        db.check_output(f"systemctl stop {unit}")
        assert db.run("pg_isready -q").rc != 0, "PostgreSQL still answers"
        mx, tried = deliver(LIST, down)
        assert mx is not None, tried
        time.sleep(15)  # long enough for Mailman to have sent it, were the database not needed
        early = copies(down)
    finally:
        db.check_output(f"systemctl start {unit}")
    after = db.check_output(f"systemctl show -p MainPID --value {unit}")
    figure(
        f"{unit} on {DB} stopped (postmaster pid {before}) and started (pid {after}); a post sent "
        f"while it was down: {'; '.join(tried)}, {len(early)} copies before the start"
    )
    assert after not in ("0", before) and not early
    exactly_once(down, MEMBERS, "post sent while the database was down", figure)
    tok = token("dbrestart")
    attempts = deliver_with_retries(LIST, tok)
    figure("post after the restart: " + "; ".join(attempts))
    exactly_once(tok, MEMBERS, "post after the database restart", figure)
    expected = configured(backend)
    _, missing = wait_all_running(backend, expected, timeout=150)
    checks = backend.run(f"journalctl -u mailman3-runners --since @{since} --no-pager -o cat").stdout
    restarts = [line for line in checks.splitlines() if "restarting mailman3" in line]
    figure(f"Mailman on {ACTIVE}: {len(expected - missing)}/{len(expected)} runners run; the runner check "
           f"restarted it {len(restarts)} times" + "".join(f" ({line})" for line in restarts))
    assert not missing, f"runners missing on {ACTIVE}: {sorted(missing)}"
    # A restart by the runner check takes Mailman's REST API down until gunicorn listens again (about
    # 45 s here): the pages load once it does.
    t0, page = time.monotonic(), fetch(f"https://{SITE}/postorius/lists/")
    while page["status"] != 200 and time.monotonic() - t0 < 180:
        time.sleep(3)
        page = fetch(f"https://{SITE}/postorius/lists/")
    figure(f"Postorius after the database restart: {page['status']} after {time.monotonic() - t0:.0f} s")
    assert page["status"] == 200


def lists_page_upstreams(mark: int) -> list[list[str]]:
    """The nodes nginx tried, in order, for each request of the lists page logged after line mark
    of the proxy's access log (its log format names them: upstream="addr:port, addr:port")."""
    log = lab_host(PROXY).check_output(f"tail -n +{mark + 1} /var/log/nginx/access.log")
    return [
        m[1].split(", ")
        for line in log.splitlines()
        if '"GET /postorius/lists/ ' in line and (m := re.search(r'upstream="([^"]*)"', line))
    ]


def test_one_web_node_stopped_the_pages_still_load(figure):
    """Both web nodes answer the lists page through the proxy; with one stopped, every request is
    answered by the other (nginx tries the stopped one at most until it leaves it out)."""
    down, up = WEB[0], WEB[1]
    node = {w: HOSTVARS[w]["mailstack__address"] + ":" for w in WEB}

    def served_by(tried: list[str]) -> str:
        return next(w for w in WEB if tried[-1].startswith(node[w]))

    def log_lines() -> int:
        return int(lab_host(PROXY).check_output("wc -l < /var/log/nginx/access.log"))

    mark = log_lines()
    before = [fetch(f"https://{SITE}/postorius/lists/")["status"] for _ in range(10)]
    served_before = [served_by(t) for t in lists_page_upstreams(mark)]
    assert before == [200] * 10 and down in served_before, (before, served_before)
    try:
        lab_host(down).check_output("systemctl stop mailman3-web")
        mark = log_lines()
        statuses = [fetch(f"https://{SITE}/postorius/lists/")["status"] for _ in range(10)]
        archive = fetch(f"https://{SITE}/hyperkitty/")["status"]
        after = lists_page_upstreams(mark)
        figure(
            f"both up: {served_before.count(down)}/10 lists pages from {down}; {down} stopped: the lists "
            f"page {statuses.count(200)}/10 times 200, {sum(served_by(t) == up for t in after)}/{len(after)} "
            f"answered by {up} ({sum(len(t) > 1 for t in after)} after trying {down}), HyperKitty {archive}"
        )
        assert statuses == [200] * 10
        assert archive == 200
        assert len(after) == 10 and all(served_by(t) == up for t in after), after
    finally:
        lab_host(down).check_output("systemctl start mailman3-web")
