"""rspamd in sign mode (rspamd-signer, as on a relay): mail from the signing networks whose
envelope sender is a signing domain gets a DKIM signature that verifies against the key generated
on the controller, and nothing else runs; mail from elsewhere or of another domain is not signed."""

from __future__ import annotations

import base64
import json
import os
import subprocess
from pathlib import Path

import pytest

testinfra_hosts = ["ansible://rspamd-signer"]
EPHEMERAL_DIR = Path(os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "/nonexistent"))
KEY = EPHEMERAL_DIR / "secret" / "dkim" / "lists.example.test.test1.key"
MESSAGE = (
    b"From: Author <author@elsewhere.test>\r\nTo: dev@lists.example.test\r\nSubject: [dev] hello\r\n"
    b"Message-ID: <sign-test@lists.example.test>\r\nDate: Mon, 30 Nov 2026 00:00:00 +0000\r\n"
    b"List-Id: <dev.lists.example.test>\r\n\r\nA list post, after Mailman.\r\n"
)

CHECK = r"""
import json, sys, urllib.request
req = urllib.request.Request("http://127.0.0.1:11333/checkv2", data=bytes.fromhex(sys.argv[3]),
                             headers={"IP": sys.argv[1], "From": sys.argv[2], "Rcpt": "member@remote.test"})
print(urllib.request.urlopen(req, timeout=60).read().decode())
"""

# dkimpy on the host, with the public key handed in instead of a DNS lookup.
VERIFY = r"""
import sys, dkim
record = sys.argv[1].encode()
print(dkim.verify(bytes.fromhex(sys.argv[2]), dnsfunc=lambda name, timeout=5: record))
"""


def check(host, ip: str, sender: str) -> dict:
    out = host.run("python3 -c %s %s %s %s", CHECK, ip, sender, MESSAGE.hex())
    assert out.rc == 0, out.stderr
    return json.loads(out.stdout)


def public_record() -> str:
    der = subprocess.run(
        ["openssl", "pkey", "-in", str(KEY), "-pubout", "-outform", "DER"], capture_output=True, check=True
    ).stdout
    return "v=DKIM1; k=rsa; p=" + base64.b64encode(der).decode()


def test_list_mail_from_the_signing_network_is_signed_and_nothing_else_runs(host):
    result = check(host, "172.31.11.20", "dev-bounces@lists.example.test")
    assert set(result["symbols"]) == {"DKIM_SIGNED"}
    assert result["action"] == "no action"
    assert result["score"] == 0
    signature = result["dkim-signature"]
    assert "d=lists.example.test;" in signature and "s=test1;" in signature


def test_the_signature_verifies_against_the_controller_key(host):
    host.run_expect(
        [0],
        "apt-get install -y -q python3-dkim >/dev/null 2>&1 || "
        "(apt-get update -q >/dev/null && apt-get install -y -q python3-dkim >/dev/null)",
    )
    signature = check(host, "172.31.11.20", "dev-bounces@lists.example.test")["dkim-signature"]
    signed = b"DKIM-Signature: " + signature.encode() + b"\r\n" + MESSAGE
    out = host.run("python3 -c %s %s %s", VERIFY, public_record(), signed.hex())
    assert out.stdout.strip() == "True", out.stderr


@pytest.mark.parametrize(
    ("ip", "sender"),
    [
        ("192.0.2.10", "dev-bounces@lists.example.test"),  # outside the signing networks
        ("172.31.11.20", "someone@other.example.test"),  # not a signing domain
    ],
)
def test_other_mail_is_not_signed(host, ip, sender):
    assert "dkim-signature" not in check(host, ip, sender)


def test_the_key_is_rspamd_s_alone_and_the_controller_s_copy(host):
    key = host.file("/var/lib/rspamd/dkim/lists.example.test.test1.key")
    assert (key.user, key.group, oct(key.mode)) == ("root", "_rspamd", "0o640")
    assert key.content == KEY.read_bytes()
    assert oct(KEY.stat().st_mode & 0o777) == "0o600"


def test_no_antivirus_in_sign_mode(host):
    assert not host.file("/etc/rspamd/local.d/antivirus.conf").exists
    assert host.file("/etc/rspamd/local.d/settings.conf").contains("DKIM_SIGNED")
