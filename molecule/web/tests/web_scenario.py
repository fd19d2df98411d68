"""What the verify tests of molecule/web share: the hosts, SMTP from a client, the relay's stored copies.

The test files run in the order of their names: test_1_backend (lists, mail through Mailman and
postfix-out), test_2_web (the browser, the proxy, sign-up), test_3_reconfigure (changes Mailman's
settings and restarts it, so it runs last).
"""

import base64
import email
import email.policy
import json
import os
import pathlib
import re
import sys
import time

import testinfra

SCENARIO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]
sys.path.insert(0, str(PROJECT / "tests"))
from mailman_runners import configured, running, wait_all_running, written  # noqa: E402,F401  (re-exported)
from molecule_playbook import ansible_playbook  # noqa: E402,F401  (re-exported for the test files)

SECRET = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secret"
SITE = "lists.web.test"
BACKEND, WEB1, WEB2 = "172.31.18.10", "172.31.18.21", "172.31.18.22"
PROXY, NEXTHOP = "172.31.18.30", "172.31.18.50"
# The relay stores every copy for example.test in this Maildir (molecule.yml).
NEXTHOP_MAILDIR = "/var/mail/sink/new"
MEMBERS = ["alice@example.test", "bob@example.test", "carol@example.test"]


def host(name):
    return testinfra.get_host(f"docker://{name}")


def rest(path):
    """GET on Mailman's REST API, from the back-end itself (on its internal address: there are web nodes)."""
    password = (SECRET / "mailman_core" / "rest.password").read_text().strip()
    token = base64.b64encode(f"restadmin:{password}".encode()).decode()
    script = (
        "import json, sys, urllib.request; r = urllib.request.Request(sys.argv[1], "
        "headers={'Authorization': 'Basic ' + sys.argv[2]}); print(urllib.request.urlopen(r).read().decode())"
    )
    out = host("web-backend").check_output(
        "python3 -c %s %s %s", script, f"http://{BACKEND}:8001/3.1/{path}", token)
    return json.loads(out)


_SMTP = r"""
import json, smtplib, sys
sender, rcpts, subject, server = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
source = (sys.argv[5], 0) if len(sys.argv) > 5 else None
msg = (f"From: {sender}\r\nTo: {rcpts[0]}\r\nSubject: {subject}\r\n"
       f"Message-ID: <{subject}@example.test>\r\n\r\nHello list, this is {subject}.\r\n")
out = {}
try:
    s = smtplib.SMTP(server, 25, timeout=30, source_address=source)
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


def smtp(client, sender, rcpts, subject, source=None):
    """One SMTP transaction from `client` to the back-end's port 25 (from `source` if given); the replies."""
    args = [_SMTP, sender, ",".join(rcpts), subject, BACKEND] + ([source] if source else [])
    return json.loads(host(client).check_output("python3 -c" + " %s" * len(args), *args))


def stored(pattern, expected, timeout=120):
    """Messages on the relay whose text contains `pattern`: {recipient (Delivered-To): full text}."""
    nexthop = host("web-nexthop")
    deadline = time.monotonic() + timeout
    copies = {}
    while time.monotonic() < deadline:
        files = nexthop.run("grep -l -F -- %s %s/* 2>/dev/null", pattern, NEXTHOP_MAILDIR)
        copies = {}
        for name in files.stdout.split():
            text = nexthop.check_output("cat %s", name)
            rcpt = re.search(r"^Delivered-To: (\S+)$", text, re.M).group(1)
            copies[rcpt] = text
        if len(copies) >= expected:
            break
        time.sleep(2)
    return copies


def body(text):
    """The decoded text body of a stored message."""
    return email.message_from_string(text, policy=email.policy.default).get_body(("plain",)).get_content()
