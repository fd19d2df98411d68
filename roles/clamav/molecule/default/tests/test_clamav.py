"""roles/clamav alone: clamd on its Unix socket, with the custom EICAR signature only and freshclam off."""

from __future__ import annotations

import json
from pathlib import Path

from support.molecule_playbook import ansible_playbook
from support.scenario import flat

SOCKET = "/run/clamav/clamd.ctl"
# The EICAR test file, from the hex of the custom signature (converge.yml): the repository never
# holds the test string itself.
EICAR_HEX = (
    "58354f2150254041505b345c505a58353428505e2937434329377d2445494341522d5354414e444152442d"
    "414e544956495255532d544553542d46494c452124482b482a"
)

# Runs inside the container: speaks clamd's protocol (zPING, zSTATS, zINSTREAM) over the Unix socket.
CLAMD_CLIENT = r"""
import json, socket, struct, sys
path, command, payload = sys.argv[1], sys.argv[2], bytes.fromhex(sys.argv[3])
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.settimeout(30)
s.connect(path)
if command in ("PING", "STATS"):
    s.sendall(b"z" + command.encode() + b"\0")
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


def test_clamd_runs_with_the_configured_thread_limit(host):
    """clamav__clamd_config reaches the running clamd: STATS reports MaxThreads 4 (Debian's is 12)."""
    stats = clamd(host, "STATS")
    threads = next(line for line in stats.splitlines() if line.startswith("THREADS:")).split()
    assert threads[threads.index("max") + 1] == "4", stats
    conf = host.file("/etc/clamav/clamd.conf").content_string
    assert "\nMaxThreads 4\n" in conf
    assert f"\nLocalSocket {SOCKET}\n" in conf


def test_socket_refuses_other_users(host):
    """Mode 0660 clamav:clamav (not Debian's 0666): nobody is refused, the clamav group gets in."""
    assert host.run("stat -c '%%a %%U %%G' %s", SOCKET).stdout.split() == ["660", "clamav", "clamav"]
    refused = host.run("runuser -u nobody -- python3 -c %s %s PING 00", CLAMD_CLIENT, SOCKET)
    assert refused.rc != 0
    assert "PermissionError" in refused.stderr, refused.stderr
    allowed = host.run("runuser -u clamav -- python3 -c %s %s PING 00", CLAMD_CLIENT, SOCKET)
    assert allowed.rc == 0, allowed.stderr
    assert json.loads(allowed.stdout) == "PONG"


def test_bad_clamd_option_fails_and_leaves_the_live_file(host):
    """An option clamd does not know fails validation: the run fails, clamd.conf and clamd stay."""
    before = host.file("/etc/clamav/clamd.conf").sha256sum
    result = ansible_playbook(
        Path(__file__).resolve().parent.parent / "converge.yml",
        extra={"clamav__clamd_config": {"MaxThreads": 4, "NoSuchOption": "yes"}},
        timeout=600,
    )
    output = result.stdout + "\n" + result.stderr
    assert result.returncode != 0, output
    assert "Unknown option NoSuchOption" in flat(output), output
    assert host.file("/etc/clamav/clamd.conf").sha256sum == before
    assert "NoSuchOption" not in host.file("/etc/clamav/clamd.conf").content_string
    assert clamd(host, "PING") == "PONG"


def test_signature_file_check_refuses_a_malformed_file(host):
    """The validate: program of the signature files (files/check-signature-file.sh) on the host: the
    EICAR signature loads, a malformed .ndb line and a name with a slash are refused."""
    check = "/usr/local/libexec/mailstack/clamav-check-signature-file"
    good = f"Mailstack.Test.EICAR:0:*:{EICAR_HEX}\n"
    host.run("printf %s %s > /tmp/good.ndb && printf 'Broken:0:*:zz-not-hex\\n' > /tmp/bad.ndb", "%s", good)
    try:
        assert host.run("%s /tmp/good.ndb test.ndb", check).rc == 0
        bad = host.run("%s /tmp/bad.ndb test.ndb", check)
        assert bad.rc != 0, bad.stdout + bad.stderr
        assert host.run("%s /tmp/good.ndb ../test.ndb", check).rc == 2
    finally:
        host.run("rm -f /tmp/good.ndb /tmp/bad.ndb")
