"""A rolling change under load: while the internet host sends a post every 1.5 s, mx.yml
changes a setting that restarts Postfix (inet_protocols) on every MX, one MX at a time, then
changes it back. No post is refused with a 5xx, every accepted post reaches every member once
(recounted after the site settled), the play really went one MX at a time, and each MX's restart
cut an SMTP session held open on it, whose post then went to the other MX."""

import json
import shlex
import subprocess
import time
import uuid

from e2e import copies, delete, headers, internet, mx_hosts, settled
from test_lab import TOP, group, lab_host

LIST = "announce@lists.mailstack.test"
MEMBERS = ["alice@remote-a.test", "bob@remote-a.test", "carol@remote-b.test", "dave@remote-b.test"]
MXS = group("mx")
LOG = "/run/e2e-rolling-sender"

# Runs on the internet host until STOP exists: a post every 1.5 s (40 a minute, under the MX's
# connection rate limit of 60 per client), each handed to the MX
# hosts in order of preference as a mail server would (the next MX on no answer or 4xx); one JSON
# line per post: its token, and every MX's reply.
SENDER = r"""
import json, os, smtplib, sys, time
prefix, mxs, log, stop = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
n = 0
while not os.path.exists(stop):
    token = "%s-%05d" % (prefix, n)
    msg = ("From: sender@remote-a.test\r\nTo: announce@lists.mailstack.test\r\nSubject: %s\r\n"
           "Message-ID: <%s@remote-a.test>\r\n\r\nrolling\r\n" % (token, token)).encode()
    tries = []
    for mx in mxs:
        try:
            s = smtplib.SMTP(mx, 25, local_hostname="internet.lab.mailstack.test", timeout=20)
            s.sendmail("sender@remote-a.test", ["announce@lists.mailstack.test"], msg)
            s.quit()
            tries.append([mx, 250])
            break
        except smtplib.SMTPResponseException as e:
            tries.append([mx, e.smtp_code])
            if 500 <= e.smtp_code < 600:
                break
        except (smtplib.SMTPException, OSError) as e:
            tries.append([mx, str(e)[:60]])
    with open(log, "a") as f:
        f.write(json.dumps({"token": token, "tries": tries}) + "\n")
    n += 1
    time.sleep(1.5)
"""


# Runs on the internet host, one per MX, before the rolling change: opens a session to that MX up to
# RCPT and waits, idle, for the MX to close it (its Postfix restarting; smtpd_timeout is 300 s). Then
# it sends the post as a mail server would after a lost session: to the next MX in order. One JSON
# line: the token, the MX that held the session, when the session was cut, and every retry's reply.
HOLDER = r"""
import json, smtplib, socket, sys, time
token, held_at, mxs, log = sys.argv[1], sys.argv[2], sys.argv[3].split(","), sys.argv[4]
wait = float(sys.argv[5])
msg = ("From: sender@remote-a.test\r\nTo: announce@lists.mailstack.test\r\nSubject: %s\r\n"
       "Message-ID: <%s@remote-a.test>\r\n\r\nheld across a restart\r\n" % (token, token)).encode()
s = smtplib.SMTP(held_at, 25, local_hostname="internet.lab.mailstack.test", timeout=30)
s.ehlo()
s.mail("sender@remote-a.test")
s.rcpt("announce@lists.mailstack.test")
s.sock.settimeout(wait)
opened = time.time()
try:
    data = s.sock.recv(1024)
    cut, said = time.time(), data.decode(errors="replace").strip()
except socket.timeout:
    cut, said = None, ""
tries = []
if cut is None:
    code, _ = s.data(msg)
    tries.append([held_at, code])
else:
    for mx in [m for m in mxs if m != held_at]:
        try:
            with smtplib.SMTP(mx, 25, local_hostname="internet.lab.mailstack.test", timeout=30) as t:
                t.sendmail("sender@remote-a.test", ["announce@lists.mailstack.test"], msg)
            tries.append([mx, 250])
            break
        except smtplib.SMTPResponseException as e:
            tries.append([mx, e.smtp_code])
        except (smtplib.SMTPException, OSError) as e:
            tries.append([mx, str(e)[:60]])
with open(log, "a") as f:
    f.write(json.dumps({"token": token, "held_at": held_at, "opened": opened, "cut": cut, "said": said,
                        "tries": tries}) + "\n")
"""
HELD = "/run/e2e-rolling-held"


def started_at(host: str) -> str:
    """When the host's Postfix (primary instance) last started."""
    return lab_host(host).check_output("systemctl show -p ActiveEnterTimestampMonotonic postfix@-")


def play_mx(*extra: str) -> tuple[float, str]:
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(TOP / "scripts" / "lab"), "play", "playbooks/mx.yml", *extra],
        cwd=TOP,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    return time.monotonic() - t0, proc.stdout


def test_a_setting_rolled_over_every_mx_while_mail_is_sent_loses_and_refuses_nothing(figure):
    prefix = f"rolling-{uuid.uuid4().hex[:8]}"
    stop = f"{LOG}.stop"
    net = internet()
    net.check_output(f"rm -f {LOG} {stop}")
    args = " ".join(shlex.quote(a) for a in (prefix, ",".join(mx_hosts()), LOG, stop))
    net.check_output(f"nohup python3 -c {shlex.quote(SENDER)} {args} >/dev/null 2>&1 &")
    # One session held open on each MX across the change: each MX's restart must cut one.
    net.check_output(f"rm -f {HELD} {HELD}.err")
    order = mx_hosts()
    for mx in order:
        argv = (f"{prefix}-held-{mx.split('.')[0]}", mx, ",".join(order), HELD, "280")
        net.check_output(
            f"nohup python3 -c {shlex.quote(HOLDER)} {' '.join(map(shlex.quote, argv))} >>{HELD}.err 2>&1 &"
        )
    setting = {"name": "inet_protocols", "value": "ipv4"}
    change = {"postfix__group_instances": [{"name": "-", "maincf": [setting]}]}
    started = {mx: started_at(mx) for mx in MXS}
    try:
        t_play = time.time()
        took, out = play_mx("-e", json.dumps(change))
        t_played = time.time()
        restarted = [mx for mx in MXS if started_at(mx) != started[mx]]
        back, out_back = play_mx()
    finally:
        net.check_output(f"touch {stop}")
        time.sleep(2)
    batches = out.count("PLAY [Inbound MX nodes]")
    posts = [json.loads(line) for line in net.file(LOG).content_string.splitlines()]
    accepted = [p for p in posts if p["tries"] and p["tries"][-1][1] == 250]
    refused_5xx = [p for p in posts if any(isinstance(t[1], int) and t[1] >= 500 for t in p["tries"])]
    fell_back = [p for p in posts if len(p["tries"]) > 1]
    figure(
        f"mx.yml changed inet_protocols in {took:.0f} s and back in {back:.0f} s, {batches} batches "
        f"of one MX, Postfix restarted on {restarted}; meanwhile {len(posts)} posts sent: "
        f"{len(accepted)} accepted, {len(refused_5xx)} refused with 5xx, {len(fell_back)} went to "
        f"the next MX"
    )
    # Each MX's restart met a session in progress: cut during the change, and the post went on
    # to another MX.
    deadline = time.monotonic() + 60
    while len(net.run(f"cat {HELD}").stdout.splitlines()) < len(MXS) and time.monotonic() < deadline:
        time.sleep(1)
    held = [json.loads(line) for line in net.file(HELD).content_string.splitlines()]
    for h in held:
        h["mx"] = h["held_at"].split(".")[0]
    figure(
        "sessions held across the change: "
        + "; ".join(
            f"{h['mx']} cut {h['cut'] - t_play:.0f} s into the play ({h['said'] or 'closed'}); {h['tries']}"
            if h["cut"]
            else f"{h['mx']} never cut: {h['tries']}"
            for h in held
        )
    )
    assert sorted(h["mx"] for h in held) == sorted(MXS), (held, net.run(f"cat {HELD}.err").stdout)
    for h in held:
        assert h["cut"] and t_play < h["cut"] < t_played, h
        assert h["tries"] and h["tries"][-1][1] == 250 and h["tries"][-1][0] != h["held_at"], h
    assert batches == len(MXS) and out_back.count("PLAY [Inbound MX nodes]") == len(MXS)
    assert restarted == MXS
    assert not refused_5xx, refused_5xx[:3]
    assert len(accepted) == len(posts) > 0
    accepted += [{"token": h["token"], "tries": h["tries"]} for h in held]
    # Every copy of the run's posts in one pass over the store: {token: [Delivered-To, ...]}.
    want, deadline = len(accepted) * len(MEMBERS), time.monotonic() + 300
    found, paths = by_token(prefix)
    while sum(map(len, found.values())) < want and time.monotonic() < deadline:
        time.sleep(3)
        found, paths = by_token(prefix)
    first = sum(map(len, found.values()))
    try:
        # The count again once every queue of the site emptied by itself: a duplicate still queued
        # at the first count is in the recount.
        settle = settled()
        found, paths = by_token(prefix)
        wrong = {
            p["token"]: found.get(p["token"])
            for p in accepted
            if sorted(found.get(p["token"], [])) != MEMBERS
        }
        figure(
            f"{len(accepted) - len(wrong)}/{len(accepted)} posts reached each of the {len(MEMBERS)} "
            f"members exactly once ({sum(map(len, found.values()))} copies, {first} at the first count); "
            f"every queue empty {settle:.0f} s later"
        )
        assert not wrong, list(wrong.items())[:3]
    finally:
        delete(paths)


def by_token(prefix: str) -> tuple[dict[str, list[str]], list[str]]:
    """The stored copies of the posts whose subject ends in a token of prefix: recipients by
    token, and the files."""
    paths = copies(prefix)
    found: dict[str, list[str]] = {}
    for copy in headers(paths):
        words = (copy["subject"] or "").split()
        if words and words[-1].startswith(prefix):
            found.setdefault(words[-1], []).append(copy["to"])
    return found, paths
