"""Helpers of the end-to-end checks: sending as a mail server on the internet would (MX records in
order of preference, the next MX when one does not answer), the copies the internet host stores
(one file per recipient) and their headers, the site's Postfix queues, and proving "every member
got exactly one copy and every queue is empty"."""

from __future__ import annotations

import json
import shlex
import time
from dataclasses import dataclass, field

from support.smtpclient import first_refusal, message, send
from test_lab import STORE, group, lab_host, stored_files
from test_lab import send as send_subjects

MX = group("mx")[0]
DOMAIN = "lists.mailstack.test"
SENDER = "sender@remote-a.test"
HELO = "internet.lab.mailstack.test"
# Every host that runs Postfix (the web nodes have a loopback one for Django's mail).
POSTFIX_HOSTS = [*group("mx"), *group("mailman_core"), *group("relays"), *group("mailman_web")]
# What waits in Mailman's queues (roles/mailman_core's program): `list` prints "QUEUE COUNT" lines.
MAILMAN_QUEUE = "/usr/local/libexec/mailstack/mailman-queue"


def internet():
    return lab_host(group("lab_internet")[0])


def copies(token: str) -> list[str]:
    """The stored files that contain token (test_lab.stored_files: only whole copies, and a failing
    grep fails the check)."""
    return stored_files(internet(), token, STORE)


def wait_copies(token: str, want: int, timeout: float = 300) -> list[str]:
    """The stored files containing token, once want of them are there and no more arrive (or timeout)."""
    deadline = time.monotonic() + timeout
    found: list[str] = []
    while time.monotonic() < deadline:
        found = copies(token)
        if len(found) >= want:
            time.sleep(3)  # a duplicate would arrive now, not later
            return copies(token)
        time.sleep(1)
    return found


def delete(files: list[str]) -> None:
    for start in range(0, len(files), 500):
        internet().check_output("rm -f " + " ".join(shlex.quote(f) for f in files[start : start + 500]))


def post(list_address: str, token: str, via: str = MX) -> None:
    """Post from the internet host through an MX (by its name), as a list member's mail would come."""
    send_subjects(internet(), f"{via}.lab.mailstack.test", SENDER, [list_address], [token])


def queue_size(host: str) -> int:
    """Messages in every Postfix instance's queue of a lab host (a failing postqueue fails the check)."""
    h = lab_host(host)
    total = 0
    for instance in h.check_output("postmulti -l | awk '{print $1}'").split():
        out = h.check_output(f"postmulti -i {shlex.quote(instance)} -x postqueue -j")
        total += len([line for line in out.splitlines() if line.strip()])
    return total


def running_backend() -> str | None:
    """The back-end that runs Mailman now (a drill may have moved it), or None while none does (a
    restart); two is an error."""
    backends = group("mailman_core")
    running = [h for h in backends if lab_host(h).run("systemctl is-active --quiet mailman3").rc == 0]
    assert len(running) <= 1, f"Mailman runs on {running}"
    return running[0] if running else None


def active_backend(timeout: float = 180) -> str:
    """The back-end that runs Mailman, once one does (a restart by a drill or the runner check)."""
    deadline = time.monotonic() + timeout
    while (backend := running_backend()) is None:
        assert time.monotonic() < deadline, f"Mailman runs on no back-end after {timeout:.0f} s"
        time.sleep(2)
    return backend


def mailman_waiting(host: str) -> dict[str, int]:
    """{queue: messages} of each of Mailman's queues that holds something (shunt and bad included)."""
    out = lab_host(host).check_output(f"{MAILMAN_QUEUE} list")
    return {queue: int(n) for queue, n in (line.split() for line in out.splitlines())}


def not_empty() -> dict[str, int | str]:
    """What waits anywhere in the site: each Postfix host's queued messages, and each of Mailman's
    queues on the active back-end ("list1:mailman/out")."""
    left: dict[str, int | str] = {h: n for h in POSTFIX_HOSTS if (n := queue_size(h))}
    backend = running_backend()
    if backend is None:  # restarting: what its queues hold is not being handed on
        left["mailman"] = "runs on no back-end"
    else:
        left |= {f"{backend}:mailman/{q}": n for q, n in mailman_waiting(backend).items()}
    return left


def settled(timeout: float = 240) -> float:
    """Wait, flushing nothing, until every Postfix queue of the site and every Mailman queue of the
    active back-end are empty: the system delivered by itself. Returns the seconds it took; fails
    with what still waits after timeout."""
    t0 = time.monotonic()
    while left := not_empty():
        assert time.monotonic() - t0 < timeout, f"not settled after {timeout:.0f} s: {left}"
        time.sleep(2)
    return time.monotonic() - t0


def mailman_rest(host: str, method: str, path: str, data: dict | None = None) -> dict:
    """Call Mailman's REST API on a back-end (at the address its mailman.cfg binds), as the admin."""
    script = r"""
import base64, configparser, json, sys, urllib.parse, urllib.request
cfg = configparser.ConfigParser(interpolation=None, strict=False)
cfg.read('/etc/mailman3/mailman.cfg')
web = cfg['webservice']
url = 'http://%s:%s/3.1/%s' % (web['hostname'], web['port'], sys.argv[2])
data = json.loads(sys.argv[3])
body = urllib.parse.urlencode(data).encode() if data is not None else None
req = urllib.request.Request(url, data=body, method=sys.argv[1])
auth = base64.b64encode(('%s:%s' % (web['admin_user'], web['admin_pass'])).encode()).decode()
req.add_header('Authorization', 'Basic ' + auth)
with urllib.request.urlopen(req, timeout=30) as resp:
    text = resp.read().decode()
print(text or '{}')
"""
    out = lab_host(host).check_output(
        f"python3 -c {shlex.quote(script)} {method} {shlex.quote(path)} {shlex.quote(json.dumps(data))}"
    )
    return json.loads(out)


def mx_hosts() -> list[str]:
    """The list domain's MX host names, most preferred first (the lab DNS, from the internet)."""
    records = internet().check_output(f"dig +short MX {DOMAIN}").splitlines()
    return [r.split()[1].rstrip(".") for r in sorted(records, key=lambda r: int(r.split()[0]))]


def deliver(list_address: str, token: str) -> tuple[str | None, list[str]]:
    """Hand a post to the list's MX hosts as a sending server does: each MX in order until one
    accepts. Returns the MX that accepted it (None: none did) and every attempt's outcome."""
    msg = message(SENDER, list_address, f"e2e {token}", f"<{token}@remote-a.test>")
    tried = []
    for mx in mx_hosts():
        result = send(internet(), mx, SENDER, [list_address], msg, helo=HELO, timeout=30)
        refusal = first_refusal(result)
        if refusal is None:
            tried.append(f"{mx}: 250")
            return mx, tried
        step, code, text = refusal
        tried.append(f"{mx}: {step} {code} {text}")
        if 500 <= code < 600:  # a permanent refusal ends it; 4xx or no answer: the next MX
            break
    return None, tried


HEADERS = r"""
import json, sys
from email.parser import BytesHeaderParser
out = []
for path in sys.argv[1:]:
    with open(path, "rb") as f:
        h = BytesHeaderParser().parse(f)
    out.append({"to": h["Delivered-To"], "list_id": h["List-Id"], "subject": h["Subject"],
                "received": [" ".join(r.split()) for r in h.get_all("Received", [])]})
print(json.dumps(out))
"""


def headers(files: list[str]) -> list[dict]:
    """Delivered-To, List-Id, Subject and the Received lines of each stored copy."""
    out: list[dict] = []
    for start in range(0, len(files), 400):
        chunk = " ".join(shlex.quote(f) for f in files[start : start + 400])
        out += json.loads(internet().check_output(f"python3 -c {shlex.quote(HEADERS)} {chunk}"))
    return out


def recipients(files: list[str]) -> list[str]:
    """The Delivered-To of each stored copy."""
    return [c["to"] for c in headers(files)]


@dataclass
class Count:
    """Copies counted against a list's members."""

    members: set[str]
    got: list[str] = field(default_factory=list)

    @property
    def delivered(self) -> int:
        return len(set(self.got) & self.members)

    @property
    def duplicates(self) -> int:
        return len(self.got) - len(set(self.got))

    @property
    def strangers(self) -> set[str]:
        return set(self.got) - self.members

    @property
    def exact(self) -> bool:
        """Every member got exactly one copy, and nobody else got one."""
        return self.duplicates == 0 and set(self.got) == self.members

    def __str__(self) -> str:
        return (
            f"{self.delivered}/{len(self.members)} delivered, {self.duplicates} duplicates, "
            f"{len(self.strangers)} to non-members"
        )


def once_each(got: list[str], members: set[str]) -> Count:
    """The recipients of the copies (Delivered-To) counted against the members."""
    return Count(members, list(got))


def exactly_once(
    token: str, members: set[str], what: str, figure, *, timeout: float = 300, after_first_count=None
) -> list[dict]:
    """Wait for token's copies; every member has exactly one and nobody else got one, counted twice:
    when they arrived, and again once the site settled by itself (every Postfix and Mailman queue
    empty, nothing flushed), so a duplicate still queued at the first count is seen. Reports the
    figure, deletes the copies, returns their headers. after_first_count(files) runs between the
    two counts (the suite's test of this helper adds a copy there)."""
    t0 = time.monotonic()
    files = wait_copies(token, len(members), timeout=timeout)
    took = time.monotonic() - t0
    try:
        first = once_each(recipients(files), members)
        if after_first_count:
            after_first_count(files)
        settle = settled()
        files = copies(token)
        copied = headers(files)
        count = once_each([c["to"] for c in copied], members)
        figure(
            f"{what}: {count}, in {took:.1f} s; the site settled {settle:.0f} s later, "
            f"{len(count.got) - len(first.got)} more copies on the recount"
        )
        assert first.exact, f"first count: {first}"
        assert count.exact, f"after the queues settled: {count}"
        return copied
    finally:
        delete(files)
