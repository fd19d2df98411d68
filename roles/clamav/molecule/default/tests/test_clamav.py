"""clamd on its loopback Unix socket, with the custom EICAR signature only and freshclam off."""

from __future__ import annotations

import json

SOCKET = "/run/clamav/clamd.ctl"
# The EICAR test file, from the hex of the custom signature (converge.yml): the repository never
# holds the test string itself.
EICAR_HEX = (
    "58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d"
    "414e544956495255532d544553542d46494c452124482b482a"
)

# Runs inside the container: speaks clamd's protocol (zPING, zINSTREAM) over the Unix socket.
CLAMD_CLIENT = r"""
import json, socket, struct, sys
path, command, payload = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(path)
if command == "PING":
    s.sendall(b"zPING\0")
else:
    s.sendall(b"zINSTREAM\0" + struct.pack("!L", len(payload)) + payload + struct.pack("!L", 0))
reply = b""
while not reply.endswith(b"\0"):
    chunk = s.recv(4096)
    if not chunk:
        break
    reply += chunk
print(json.dumps(reply.rstrip(b"\0").decode()))
"""


def clamd(host, command: str, payload: bytes = b"") -> str:
    result = host.run("python3 -c %s %s %s %s", CLAMD_CLIENT, SOCKET, command, payload.hex() or "00")
    assert result.rc == 0, result.stderr
    return json.loads(result.stdout)


def test_clamd_answers_ping(host):
    assert clamd(host, "PING") == "PONG"


def test_clamd_finds_eicar_with_the_custom_signature(host):
    reply = clamd(host, "INSTREAM", b"attachment: " + bytes.fromhex(EICAR_HEX) + b"\r\n")
    assert reply == "stream: Mailstack.Test.EICAR.UNOFFICIAL FOUND"


def test_clamd_passes_clean_data(host):
    assert clamd(host, "INSTREAM", b"Hello, this is a clean message.\n") == "stream: OK"


def test_clamdscan_client_reports_the_virus(host):
    """The stock client, through clamd.conf's LocalSocket, names the signature and exits 1."""
    result = host.run(
        "python3 -c %s > /tmp/eicar.bin && clamdscan --no-summary --stream /tmp/eicar.bin; rc=$?; "
        "rm -f /tmp/eicar.bin; exit $rc",
        f"import sys; sys.stdout.buffer.write(bytes.fromhex({EICAR_HEX!r}))",
    )
    assert result.rc == 1, result.stdout + result.stderr
    assert "Mailstack.Test.EICAR.UNOFFICIAL FOUND" in result.stdout


def test_runs_on_custom_signatures_only(host):
    """No official database: the drop-ins, not main/daily, are what let clamd start."""
    files = host.file("/var/lib/clamav").listdir()
    assert "mailstack-test.ndb" in files
    assert not [f for f in files if f.startswith(("main.", "daily.", "bytecode."))]
    assert host.service("clamav-daemon.service").is_running
    assert host.service("clamav-daemon.service").is_enabled


def test_freshclam_is_off(host):
    assert host.run("systemctl is-enabled clamav-freshclam.service").stdout.strip() == "masked"
    assert not host.service("clamav-freshclam.service").is_running
    assert host.run("pgrep -x freshclam").rc == 1


def test_clamd_has_no_network_listener(host):
    """Only the Unix socket: no TCP or UDP socket belongs to clamd."""
    inet = host.run("ss -H -ltunp").stdout
    assert "clamd" not in inet
    assert SOCKET in host.run("ss -H -lxp").stdout


def test_clamd_conf_from_data(host):
    conf = host.file("/etc/clamav/clamd.conf").content_string
    assert "\nMaxThreads 4\n" in conf
    assert f"\nLocalSocket {SOCKET}\n" in conf
