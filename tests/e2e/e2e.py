"""Helpers of the end-to-end checks: sending as a mail server on the internet would (MX records in
order of preference, the next MX when one does not answer), reading every stored copy's headers,
and proving "every member got exactly one copy and every queue is empty"."""

from __future__ import annotations

import json
import shlex
import time

from smtpclient import first_refusal, message, send
from test_lab import group
from test_relays import delete, internet, wait_copies, wait_empty_queues

DOMAIN = "lists.mailstack.test"
SENDER = "sender@remote-a.test"
HELO = "internet.lab.mailstack.test"
# Every host that runs Postfix (the web nodes have a loopback one for Django's mail).
POSTFIX_HOSTS = [*group("mx"), *group("mailman_core"), *group("relays"), *group("mailman_web")]


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


def exactly_once(token: str, members: set[str], what: str, figure, timeout: float = 300) -> list[dict]:
    """Wait for token's copies; every member has exactly one, nobody else got one, and every
    Postfix queue of the site empties. Reports the figure, deletes the copies, returns their headers."""
    t0 = time.monotonic()
    files = wait_copies(token, len(members), timeout=timeout)
    took = time.monotonic() - t0
    try:
        copies = headers(files)
        got = [c["to"] for c in copies]
        duplicates = len(got) - len(set(got))
        strangers = set(got) - members
        queues = wait_empty_queues(POSTFIX_HOSTS)
        left = {h: n for h, n in queues.items() if n}
        figure(
            f"{what}: {len(set(got) & members)}/{len(members)} delivered, {duplicates} duplicates, "
            f"{len(strangers)} to non-members, in {took:.1f} s; "
            + (f"queues not empty: {left}" if left else f"all {len(queues)} hosts' queues empty")
        )
        assert duplicates == 0
        assert set(got) == members
        assert not left
        return copies
    finally:
        delete(files)
