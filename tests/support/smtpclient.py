"""SMTP and TCP clients that run inside a test container and report every reply they got.

Shared by the molecule scenarios' testinfra tests (molecule/single) and the end-to-end suite
(tests/e2e). The client is a small Python script run with the container's python3 over testinfra
(`run_python`), so the SMTP session starts where a real sender would be, never on the controller.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shlex
from email.message import EmailMessage

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
EICAR = r"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"

# One SMTP transaction; prints {"steps": [[step, code, text], ...], "starttls_offered": bool}.
# spec: server, port (25), helo, source (an address of the container to connect from, or ""),
# sender, rcpts, starttls, size (declared with MAIL FROM, or 0), message (base64; none: no DATA),
# pad (that many more bytes of 72-character lines appended to the message's body, made here: a
# big message cannot travel as an argument), timeout (seconds, 90).
SMTP_CLIENT = r"""
import base64, json, smtplib, sys
spec = json.loads(base64.b64decode(sys.argv[1]))
steps = []
def step(name, reply):
    steps.append([name, reply[0], reply[1].decode(errors="replace")])
    return reply[0]
tls = None
try:
    source = (spec["source"], 0) if spec.get("source") else None
    s = smtplib.SMTP(local_hostname=spec["helo"], timeout=spec.get("timeout", 90), source_address=source)
    s._host = spec["server"]  # STARTTLS's server name (connect() does not set it)
    if step("connect", s.connect(spec["server"], spec.get("port", 25))) == 220:
        step("ehlo", s.ehlo())
        tls = s.has_extn("starttls")
        if spec.get("starttls"):
            step("starttls", s.starttls())
            step("ehlo", s.ehlo())
        options = ["SIZE=%d" % spec["size"]] if spec.get("size") else []
        if step("mail", s.mail(spec["sender"], options)) == 250:
            accepted = [r for r in spec["rcpts"] if step("rcpt", s.rcpt(r)) == 250]
            if accepted and spec.get("message") is not None:
                data = base64.b64decode(spec["message"])
                data += (b"0123456789" * 7 + b"\r\n") * (spec.get("pad", 0) // 72)
                try:
                    step("data", s.data(data))
                except smtplib.SMTPDataError as e:
                    steps.append(["data", e.smtp_code, e.smtp_error.decode(errors="replace")])
        s.quit()
except smtplib.SMTPServerDisconnected as e:
    steps.append(["disconnect", 0, str(e)])
except OSError as e:
    steps.append(["connect", 0, str(e)])
print(json.dumps({"steps": steps, "starttls_offered": tls}))
"""

# Raw SMTP: one reply read after each chunk sent, then every reply until EOF; prints the last line
# of each reply (JSON). spec: server, chunks.
RAW_CLIENT = r"""
import base64, json, socket, sys
spec = json.loads(base64.b64decode(sys.argv[1]))
s = socket.create_connection((spec["server"], 25), timeout=60)
f = s.makefile("rb")
def reply():
    lines = []
    while True:
        line = f.readline()
        if not line:
            return lines
        lines.append(line.decode(errors="replace").rstrip())
        if line[3:4] != b"-":
            return lines
replies = [reply()]
for chunk in spec["chunks"]:
    s.sendall(chunk.encode())
    replies.append(reply())
while True:
    r = reply()
    if not r:
        break
    replies.append(r)
print(json.dumps([r[-1] for r in replies]))
"""


def run_python(host, script: str, spec: dict):
    """Run script on the testinfra host with spec (JSON, base64) as its argument; its JSON output."""
    arg = base64.b64encode(json.dumps(spec).encode()).decode()
    out = host.run(f"python3 -c {shlex.quote(script)} {arg}")
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def message(
    sender: str,
    to: str,
    subject: str,
    message_id: str,
    *,
    body: str = "A clean message.\n",
    attachment: bytes | None = None,
) -> bytes:
    """A message with CRLF line ends, optionally with an application/octet-stream attachment."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = message_id
    msg.set_content(body)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="file.bin")
    return msg.as_bytes().replace(b"\n", b"\r\n")


def send(
    host,
    server: str,
    sender: str,
    rcpts: list[str],
    msg: bytes | None,
    *,
    helo: str,
    starttls: bool = False,
    source: str = "",
    size: int = 0,
    pad: int = 0,
    port: int = 25,
    timeout: int = 90,
) -> dict:
    """One SMTP transaction from the testinfra host; msg None stops after RCPT."""
    spec = {
        "server": server,
        "port": port,
        "helo": helo,
        "source": source,
        "sender": sender,
        "rcpts": rcpts,
        "starttls": starttls,
        "size": size,
        "pad": pad,
        "timeout": timeout,
        "message": None if msg is None else base64.b64encode(msg).decode(),
    }
    return run_python(host, SMTP_CLIENT, spec)


def first_refusal(result: dict):
    """The first reply that is not 2xx/3xx ([step, code, text]), or None when all were accepted."""
    return next((s for s in result["steps"] if not 200 <= s[1] < 400), None)


def refused(result: dict) -> tuple[str, int, str]:
    """The first refusal (step, code, text) of a transaction that must have been refused."""
    got = first_refusal(result)
    assert got is not None, f"everything was accepted: {result}"
    return tuple(got)


# The attack contents both the MX scenarios and the end-to-end suite send: GTUBE in the body, the
# EICAR string as an attachment and inline. Each gives message()'s keyword arguments.
ATTACK_CONTENTS = {
    "GTUBE": {"body": f"Spam.\n{GTUBE}\n"},
    "EICAR attached": {"attachment": EICAR.encode()},
    "EICAR inline": {"body": f"Look:\n{EICAR}\n"},
}

# The name the lab's custom ClamAV signature gives EICAR (inventories/lab/group_vars/mx/clamav.yml).
VIRUS = "Mailstack.Test.EICAR.UNOFFICIAL"


def assert_refused_as_attack(content: str, refusal) -> None:
    """A message with ATTACK_CONTENTS[content] was refused as the scanning path must: 554 after
    DATA, naming GTUBE's pattern (rspamd) or the virus (clamd through rspamd)."""
    assert refusal is not None, f"{content}: the message was accepted"
    step, code, text = refusal
    assert (step, code) == ("data", 554), refusal
    if content == "GTUBE":
        assert text.startswith("5.7.1") and "Gtube pattern" in text, refusal
    else:
        assert text == f'5.7.1 clamav: virus found: "{VIRUS}"', refusal


def peer(host, name: str):
    """Another host of the testinfra host's Ansible inventory (a molecule scenario's)."""
    return host.get_host(f"ansible://{name}", ansible_inventory=host.backend.ansible_inventory)


FLOOD = r"""
import json, smtplib, sys, time
server, source, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
replies = {}
t0, started = time.monotonic(), time.time()
for _ in range(count):
    s = smtplib.SMTP(local_hostname="flood.remote-c.test", timeout=30, source_address=(source, 0))
    try:
        code, msg = s.connect(server, 25)
    except smtplib.SMTPServerDisconnected:
        code, msg = 0, b"disconnected before the greeting"
    key = "%d %s" % (code, msg.decode(errors="replace")[:60])
    replies[key] = replies.get(key, 0) + 1
    try:
        if code == 220:
            s.quit()
    except smtplib.SMTPException:
        pass
    s.close()
ended = time.time()
print(json.dumps({"replies": replies, "seconds": time.monotonic() - t0, "started": started, "ended": ended}))
"""


def flood(host, server: str, source: str, count: int) -> dict:
    """Open count SMTP connections from source (an address of the testinfra host) to server's
    port 25, one after another, as fast as it answers. Returns the greeting counts
    ({"220 ...": n, "421 4.7.0 ...": n}), the seconds taken, its start and end (epoch seconds), and
    how many were greeted and turned away with "421 ... too many connections"."""
    out = json.loads(host.check_output(f"python3 -c {shlex.quote(FLOOD)} {server} {source} {count}"))
    out["greeted"] = sum(n for r, n in out["replies"].items() if r.startswith("220 "))
    out["limited"] = sum(n for r, n in out["replies"].items() if r.startswith("421 ") and "too many" in r)
    return out


@contextlib.contextmanager
def extra_address(host, address: str):
    """address added to the testinfra host's default interface for the duration (a second client)."""
    dev = host.check_output("ip -o -4 route show default | awk '{print $5}'") or "eth0"
    host.check_output(f"ip addr add {address}/32 dev {dev}")
    try:
        yield address
    finally:
        host.check_output(f"ip addr del {address}/32 dev {dev}")


PROBE = r"""
import json, socket, sys
from concurrent.futures import ThreadPoolExecutor
def state(target):
    addr, port = target.rsplit(":", 1)
    s = socket.socket(socket.AF_INET6 if ":" in addr else socket.AF_INET)
    s.settimeout(2)
    try:
        s.connect((addr.strip("[]"), int(port)))
        return "open"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "dropped" if isinstance(e, TimeoutError) else str(e)
    finally:
        s.close()
targets = sys.argv[1:]
with ThreadPoolExecutor(max(1, min(32, len(targets)))) as pool:  # a dropped port waits its 2 s at once
    print(json.dumps(dict(zip(targets, pool.map(state, targets)))))
"""


def probe(host, targets: list[str]) -> dict[str, str]:
    """Connect from the testinfra host to each "address:port": open, refused or dropped."""
    return json.loads(host.check_output("python3 -c %s " + " ".join(["%s"] * len(targets)), PROBE, *targets))


def public_listeners(host) -> list[int]:
    """The TCP ports the testinfra host listens on beyond loopback."""
    ports = set()
    for line in host.check_output("ss -Hltn").splitlines():
        addr, port = line.split()[3].rsplit(":", 1)
        if addr.startswith("127.") or addr in ("[::1]",) or "%lo" in addr:
            continue
        ports.add(int(port))
    return sorted(ports)
