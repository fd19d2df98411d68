"""rspamd on loopback: verdicts over HTTP (normal worker) and over the milter protocol (what Postfix
sees), antivirus through clamd, the controller behind its generated password, offline mode."""

from __future__ import annotations

import hashlib
import json
import os
from email.message import EmailMessage
from pathlib import Path

import pytest
from support.molecule_playbook import ansible_playbook
from support.scenario import flat

HOSTNAME = "rspamd-host"
# rspamd-fresh is never converged: only the check-mode test (run from the controller) uses it.
testinfra_hosts = [f"ansible://{HOSTNAME}"]
CLAMD_SOCKET = "/run/clamav/clamd.ctl"
CONVERGE = Path(__file__).resolve().parent.parent / "converge.yml"
CONTAINER_IP = "172.31.11.10"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
# The EICAR test file, from the hex of the custom signature (converge.yml).
EICAR = bytes.fromhex(
    "58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d"
    "414e544956495255532d544553542d46494c452124482b482a"
)
VIRUS = "Mailstack.Test.EICAR.UNOFFICIAL"

# Runs inside the container. "http PORT HEX": POST the message to the normal worker's /checkv2 and
# print its JSON. "milter PORT HEX": play Postfix's side of the milter protocol (version 6) for one
# message from 192.0.2.10 and print the verdict: the final reply command and its text.
CLIENT = r"""
import json, socket, struct, sys, urllib.request

mode, port, message = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
sender, rcpt = "sender@example.test", "list@lists.example.test"

if mode == "http":
    req = urllib.request.Request(f"http://127.0.0.1:{port}/checkv2", data=message, headers={
        "IP": "192.0.2.10", "Helo": "client.example.test", "From": sender, "Rcpt": rcpt})
    print(urllib.request.urlopen(req, timeout=60).read().decode())
    sys.exit(0)

s = socket.create_connection(("127.0.0.1", port), timeout=60)

def send(cmd, data=b""):
    s.sendall(struct.pack("!I", len(data) + 1) + cmd + data)

def read(n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            raise EOFError("milter closed the connection")
        buf += chunk
    return buf

def recv():
    (n,) = struct.unpack("!I", read(4))
    packet = read(n)
    return packet[:1].decode(), packet[1:]

def verdict(cmd, data):
    print(json.dumps({"cmd": cmd, "text": data.rstrip(b"\0").decode(errors="replace")}))
    send(b"Q")
    sys.exit(0)

# Offer every protocol step and every "no reply" flag; follow what rspamd asks for.
send(b"O", struct.pack("!III", 6, 0x1FF, 0x1FFFFF))
cmd, data = recv()
assert cmd == "O", cmd
_, _, proto = struct.unpack("!III", data[:12])
NO = {"C": 0x1, "H": 0x2, "M": 0x4, "R": 0x8, "B": 0x10, "L": 0x20, "N": 0x40}
NR = {"C": 0x1000, "H": 0x2000, "M": 0x4000, "R": 0x8000, "B": 0x80000, "L": 0x80, "N": 0x40000}

def step(cmd, data):
    if proto & NO[cmd]:
        return
    send(cmd.encode(), data)
    if proto & NR[cmd]:
        return
    reply, text = recv()
    if reply != "c":
        verdict(reply, text)

head, _, body = message.replace(b"\r\n", b"\n").partition(b"\n\n")
headers = []
for line in head.split(b"\n"):
    if line[:1] in (b" ", b"\t") and headers:
        headers[-1][1] += b"\r\n" + line
    else:
        name, _, value = line.partition(b":")
        headers.append([name, value.lstrip()])

send(b"D", b"Cj\0mx.example.test\0{daemon_name}\0smtpd\0")
step("C", b"client.example.test\0" + b"4" + struct.pack("!H", 40000) + b"192.0.2.10\0")
step("H", b"client.example.test\0")
send(b"D", b"Mi\0ABCDEF1234\0")
step("M", f"<{sender}>\0".encode())
step("R", f"<{rcpt}>\0".encode())
for name, value in headers:
    step("L", name + b"\0" + value + b"\0")
step("N", b"")
body = body.replace(b"\n", b"\r\n")
for i in range(0, len(body), 65535):
    step("B", body[i:i + 65535])
send(b"E")
while True:
    reply, text = recv()
    if reply in "acrtyd":
        verdict(reply, text)
"""


def message(subject: str, text: str, attachment: bytes | None = None) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Sender <sender@example.test>"
    msg["To"] = "list@lists.example.test"
    msg["Subject"] = subject
    msg["Date"] = "Sat, 28 Nov 2026 12:00:00 +0000"
    msg["Message-ID"] = f"<{subject.replace(' ', '-')}@example.test>"
    msg.set_content(text)
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="test.com")
    return msg.as_bytes()


CLEAN = message("hello", "Hello list,\n\nthe meeting moves to Thursday at ten.\n\nRegards\n")
SPAM_GTUBE = message("gtube", f"This message carries the GTUBE string.\n{GTUBE}\n")
VIRUS_INLINE = message("eicar inline", "The EICAR string inline:\n" + EICAR.decode() + "\n")
VIRUS_ATTACHED = message("eicar attached", "See the attachment.\n", attachment=EICAR)


@pytest.fixture(scope="module", autouse=True)
def rspamd_ready(host):
    """rspamd may still be loading after a reload: wait until the normal worker answers /ping."""
    script = (
        "import time, urllib.request\n"
        "for _ in range(180):\n"
        "    try:\n"
        "        reply = urllib.request.urlopen('http://127.0.0.1:11333/ping', timeout=5).read()\n"
        "        if reply.strip() == b'pong':\n"
        "            break\n"
        "    except OSError:\n"
        "        pass\n"
        "    time.sleep(1)\n"
        "else:\n"
        "    raise SystemExit('rspamd not ready')\n"
    )
    assert host.run("python3 -c %s", script).rc == 0


def run_client(host, mode: str, port: int, msg: bytes) -> dict:
    result = host.run("python3 -c %s %s %s %s", CLIENT, mode, str(port), msg.hex())
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("msg", "action"),
    [(CLEAN, "no action"), (SPAM_GTUBE, "reject"), (VIRUS_INLINE, "reject"), (VIRUS_ATTACHED, "reject")],
    ids=["clean", "gtube", "eicar-inline", "eicar-attached"],
)
def test_normal_worker_action(host, msg, action):
    result = run_client(host, "http", 11333, msg)
    assert result["action"] == action, result


@pytest.mark.parametrize("msg", [VIRUS_INLINE, VIRUS_ATTACHED], ids=["inline", "attached"])
def test_antivirus_names_the_virus(host, msg):
    result = run_client(host, "http", 11333, msg)
    assert result["symbols"]["CLAM_VIRUS"]["options"] == [VIRUS]
    assert VIRUS in result["messages"]["smtp_message"]


def test_clean_message_has_no_virus_and_no_failure(host):
    symbols = run_client(host, "http", 11333, CLEAN)["symbols"]
    assert not [s for s in symbols if s.startswith("CLAM_VIRUS")], symbols


def test_milter_rejects_gtube_with_554(host):
    assert run_client(host, "milter", 11332, SPAM_GTUBE) == {"cmd": "y", "text": "554 5.7.1 Gtube pattern"}


@pytest.mark.parametrize("msg", [VIRUS_INLINE, VIRUS_ATTACHED], ids=["inline", "attached"])
def test_milter_rejects_virus_naming_it(host, msg):
    verdict = run_client(host, "milter", 11332, msg)
    assert verdict["cmd"] == "y", verdict
    assert verdict["text"].startswith("554 5.7.1 "), verdict
    assert VIRUS in verdict["text"], verdict


def test_milter_accepts_clean_message(host):
    assert run_client(host, "milter", 11332, CLEAN)["cmd"] in ("a", "c")


EPHEMERAL_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
SECRET_DIR = EPHEMERAL_DIR / "secret" / "rspamd" / HOSTNAME


def secret_password() -> str:
    """The controller password, as the password lookup stored it in the scenario's ephemeral directory."""
    return (SECRET_DIR / "controller").read_text().split()[0]


CONTROLLER_GET = r"""
import sys, urllib.error, urllib.request
req = urllib.request.Request(sys.argv[1])
if len(sys.argv) > 2:
    req.add_header("Password", sys.argv[2])
try:
    print(urllib.request.urlopen(req, timeout=30).status)
except urllib.error.HTTPError as e:
    print(e.code)
"""


def controller_status(host, *password: str) -> int:
    result = host.run(
        "python3 -c %s %s " + "%s " * len(password), CONTROLLER_GET, "http://127.0.0.1:11334/stat", *password
    )
    assert result.rc == 0, result.stderr
    return int(result.stdout)


def test_controller_requires_the_password(host):
    password = secret_password()
    assert len(password) == 32
    assert controller_status(host) == 401
    assert controller_status(host, "wrong-password") == 401
    assert controller_status(host, password) == 200


def test_only_the_hash_reaches_the_host(host):
    password = secret_password()
    conf = host.file("/etc/rspamd/override.d/worker-controller.inc").content_string
    assert 'password = "$2$' in conf
    assert host.run("grep -rlF %s /etc/rspamd /var/lib/rspamd", password).rc == 1


def test_password_check_value_stays_on_the_controller(host):
    """sha256(hash + password) is kept next to the password on the controller, never on the host."""
    conf = host.file("/etc/rspamd/override.d/worker-controller.inc").content_string
    stored_hash = next(line for line in conf.splitlines() if line.startswith("password = "))[12:-2]
    check = (SECRET_DIR / "controller.check").read_text().strip()
    assert check == hashlib.sha256((stored_hash + secret_password()).encode()).hexdigest()
    assert "check" not in conf
    assert host.run("grep -rlF %s /etc/rspamd /var/lib/rspamd", check).rc == 1


def test_ports_listen_on_loopback_only(host):
    listening = host.run("ss -H -ltnu").stdout.split("\n")
    rspamd = {
        line.split()[4]
        for line in listening
        if line.strip() and line.split()[4].endswith((":11332", ":11333", ":11334"))
    }
    assert rspamd == {"127.0.0.1:11332", "127.0.0.1:11333", "127.0.0.1:11334"}
    for port in (11332, 11333, 11334):
        assert not host.socket(f"tcp://{CONTAINER_IP}:{port}").is_listening


def test_offline_rspamd_never_looked_outside(host):
    """rspamd__offline: no map fetch, no fuzzy server, no DNS blocklist since rspamd first started."""
    log = host.file("/var/log/rspamd/rspamd.log").content_string
    assert "read hash of" in log and "from /etc/rspamd/maps.d/mime_types.inc" in log  # the local copy
    assert "rspamd.com" not in log
    assert "cannot resolve" not in log
    assert "openphish" not in log


def test_actions_from_data(host):
    dump = host.run("rspamadm configdump actions").stdout
    assert "reject = 15;" in dump
    assert "add_header = 6;" in dump
    assert "greylist" not in dump


def test_rspamd_enabled(host):
    assert host.service("rspamd").is_enabled
    assert host.service("rspamd").is_running


CLAMD_PING = r"""
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(10)
s.connect(sys.argv[1])
s.sendall(b"zPING\0")
print(s.recv(64).rstrip(b"\0").decode())
"""


def test_clamd_socket_is_for_rspamd_only(host):
    """The socket is 0660 clamav:clamav: nobody is refused, rspamd (in group clamav) still scans."""
    refused = host.run("runuser -u nobody -- python3 -c %s %s", CLAMD_PING, CLAMD_SOCKET)
    assert refused.rc != 0
    assert "PermissionError" in refused.stderr, refused.stderr
    assert "clamav" in host.run("id -nG _rspamd").stdout.split()
    pid = host.run("systemctl show -P MainPID rspamd.service").stdout.strip()
    clamav_gid = host.run("getent group clamav").stdout.split(":")[2]
    groups = next(
        line
        for line in host.file(f"/proc/{pid}/status").content_string.splitlines()
        if line.startswith("Groups:")
    )
    assert clamav_gid in groups.split()[1:], groups
    result = run_client(host, "http", 11333, VIRUS_ATTACHED)
    assert result["action"] == "reject", result
    assert result["symbols"]["CLAM_VIRUS"]["options"] == [VIRUS]


def test_bad_fragment_fails_and_leaves_the_live_file(host):
    """A fragment that parses as UCL but that rspamd rejects (a string where a worker option needs a
    number) fails validation: the run fails, the live file and rspamd stay as they were."""
    path = "/etc/rspamd/override.d/worker-normal.inc"
    before = host.file(path).sha256sum
    bad = {
        "rspamd__config_files": [
            {
                "path": "override.d/worker-normal.inc",
                "content": {"bind_socket": "127.0.0.1:11333", "count": "lots"},
            }
        ]
    }
    run = ansible_playbook(CONVERGE, "-e", f"mailstack_test_hosts={HOSTNAME}", extra=bad, timeout=1200)
    output = run.stdout + "\n" + run.stderr
    assert run.returncode != 0, output
    assert "cannot convert string to integer in option count" in flat(output), output
    assert host.file(path).sha256sum == before
    assert "lots" not in host.file(path).content_string
    assert run_client(host, "http", 11333, CLEAN)["action"] == "no action"


def test_check_mode_on_a_host_that_never_converged():
    """--check of both roles on rspamd-fresh (created, never converged) succeeds and reports changes."""
    run = ansible_playbook(CONVERGE, "--check", "-e", "mailstack_test_hosts=rspamd-fresh", timeout=1200)
    output = run.stdout + "\n" + run.stderr
    assert run.returncode == 0, output
    recap = next(
        line for line in output.splitlines() if line.startswith("rspamd-fresh") and "failed=" in line
    )
    fields = dict(field.split("=") for field in recap.split()[2:])
    assert fields["failed"] == "0", recap
    assert int(fields["changed"]) > 0, recap


def test_clamd_down_means_soft_reject(host):
    """Nothing unscanned gets in: with clamd and its socket unit stopped, a clean message gets soft
    reject (HTTP) and a 451 (milter); GTUBE is still a 554. clamd is started again whatever happens."""
    units = "clamav-daemon.socket clamav-daemon.service"
    assert host.run(f"systemctl stop {units}").rc == 0
    try:
        result = run_client(host, "http", 11333, CLEAN)
        assert result["action"] == "soft reject", result
        assert "CLAM_VIRUS_FAIL" in result["symbols"], result["symbols"]
        assert result["messages"]["smtp_message"] == "Antivirus unavailable, try again later", result
        verdict = run_client(host, "milter", 11332, CLEAN)
        assert verdict == {"cmd": "y", "text": "451 4.7.1 Antivirus unavailable, try again later"}
        # honor_action: a message rejected anyway stays rejected, it does not become a 4xx.
        gtube = run_client(host, "milter", 11332, SPAM_GTUBE)
        assert gtube == {"cmd": "y", "text": "554 5.7.1 Gtube pattern"}
    finally:
        assert host.run(f"systemctl start {units}").rc == 0
        ping = "for i in $(seq 60); do python3 -c %s %s && exit 0; sleep 1; done; exit 1"
        assert host.run(ping, CLAMD_PING, CLAMD_SOCKET).rc == 0
    assert run_client(host, "http", 11333, VIRUS_INLINE)["action"] == "reject"
