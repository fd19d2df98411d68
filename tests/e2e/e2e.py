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
from test_lab import group, lab_host
from test_lab import send as send_subjects

STORE = "/var/mail/internet"
MX = group("mx")[0]
DOMAIN = "lists.mailstack.test"
SENDER = "sender@remote-a.test"
HELO = "internet.lab.mailstack.test"
# Every host that runs Postfix (the web nodes have a loopback one for Django's mail).
POSTFIX_HOSTS = [*group("mx"), *group("mailman_core"), *group("relays"), *group("mailman_web")]


def internet():
    return lab_host(group("lab_internet")[0])


def copies(token: str) -> list[str]:
    """The stored files that contain token (in the Maildirs' new/: tmp/ holds copies being written,
    which move away)."""
    out = internet().run(f"grep -rlF -e {shlex.quote(token)} {STORE}/*/new")
    return out.stdout.split()


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
        internet().run("rm -f " + " ".join(shlex.quote(f) for f in files[start : start + 500]))


def post(list_address: str, token: str, via: str = MX) -> None:
    """Post from the internet host through an MX (by its name), as a list member's mail would come."""
    send_subjects(internet(), f"{via}.lab.mailstack.test", SENDER, [list_address], [token])


def queue_size(host: str) -> int:
    """Messages in every Postfix instance's queue of a lab host."""
    h = lab_host(host)
    total = 0
    for instance in h.check_output("postmulti -l | awk '{print $1}'").split():
        out = h.run(f"postmulti -i {instance} -x postqueue -j").stdout
        total += len([line for line in out.splitlines() if line.strip()])
    return total


def wait_empty_queues(hosts: list[str], timeout: float = 180) -> dict[str, int]:
    """Each host's queued messages once every queue is empty (or at timeout); flushes the queues
    that hold mail while it waits."""
    deadline = time.monotonic() + timeout
    sizes = {}
    while time.monotonic() < deadline:
        sizes = {h: queue_size(h) for h in hosts}
        if not any(sizes.values()):
            break
        for h in hosts:
            if sizes[h]:
                lab_host(h).run("postmulti -a -x postqueue -f 2>/dev/null || true")
        time.sleep(3)
    return sizes


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


def exactly_once(token: str, members: set[str], what: str, figure, timeout: float = 300) -> list[dict]:
    """Wait for token's copies; every member has exactly one, nobody else got one, and every
    Postfix queue of the site empties. Reports the figure, deletes the copies, returns their headers."""
    t0 = time.monotonic()
    files = wait_copies(token, len(members), timeout=timeout)
    took = time.monotonic() - t0
    try:
        copies = headers(files)
        count = once_each([c["to"] for c in copies], members)
        queues = wait_empty_queues(POSTFIX_HOSTS)
        left = {h: n for h, n in queues.items() if n}
        figure(
            f"{what}: {count}, in {took:.1f} s; "
            + (f"queues not empty: {left}" if left else f"all {len(queues)} hosts' queues empty")
        )
        assert count.exact, count
        assert not left
        return copies
    finally:
        delete(files)
