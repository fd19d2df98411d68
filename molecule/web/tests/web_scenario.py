"""What the verify tests of molecule/web share: the hosts and SMTP from the client to the back-end."""

import json
import pathlib

from support.scenario import host

SCENARIO = pathlib.Path(__file__).resolve().parents[1]
PROJECT = SCENARIO.parents[1]

SITE = "lists.web.test"
BACKEND = "172.31.18.10"



_SMTP = r"""
import json, smtplib, sys
sender, rcpts, subject, server = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4]
msg = (f"From: {sender}\r\nTo: {rcpts[0]}\r\nSubject: {subject}\r\n"
       f"Message-ID: <{subject}@example.test>\r\n\r\nHello list, this is {subject}.\r\n")
out = {}
try:
    s = smtplib.SMTP(server, 25, timeout=30)
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


def smtp(client, sender, rcpts, subject):
    """One SMTP transaction from `client` to the back-end's port 25; the replies."""
    args = [_SMTP, sender, ",".join(rcpts), subject, BACKEND]
    return json.loads(host(client).check_output("python3 -c" + " %s" * len(args), *args))
