"""Smoke tests of a running lab (`make lab` first): `make lab-test`.

They talk to the lab's own containers only, through docker exec (testinfra's docker backend).
"""

import json
import shlex
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import testinfra

TOP = Path(__file__).resolve().parents[2]


def _inventory() -> dict:
    out = subprocess.run(
        [str(TOP / ".venv/bin/ansible-inventory"), "-i", str(TOP / "inventories/lab"), "--list"],
        capture_output=True, text=True, check=True, cwd=TOP,
    )
    return json.loads(out.stdout)


INV = _inventory()
HOSTVARS = INV["_meta"]["hostvars"]
ALL = sorted(HOSTVARS)


def lab_host(name: str):
    return testinfra.get_host(f"docker://mailstack-lab-{name}")


def group(name: str) -> list[str]:
    return INV.get(name, {}).get("hosts", [])


@pytest.mark.parametrize("name", [h for h in ALL if h not in group("lab_dns")])
def test_every_host_resolves_through_the_lab_dns(name):
    host = lab_host(name)
    dns = HOSTVARS[group("lab_dns")[0]]["mailstack__address"]
    assert f"nameserver {dns}" in host.file("/etc/resolv.conf").content_string
    for peer in ALL:
        got = host.check_output(f"getent hosts {peer}.lab.mailstack.test").split()[0]
        assert got == HOSTVARS[peer]["mailstack__address"]


def test_mx_records():
    internet = lab_host(group("lab_internet")[0])
    for domain in ("remote-a.test", "remote-b.test"):
        assert internet.check_output(f"dig +short MX {domain}") == "10 internet.lab.mailstack.test."
    mx = sorted(internet.check_output("dig +short MX lists.mailstack.test").splitlines())
    assert mx == [f"{10 * (i + 1)} {h}.lab.mailstack.test." for i, h in enumerate(group("mx"))]


def test_real_domains_do_not_resolve():
    internet = lab_host(group("lab_internet")[0])
    out = internet.run("dig +tries=1 +time=2 A example.com")
    assert "status: REFUSED" in out.stdout or "status: NXDOMAIN" in out.stdout


def test_internet_stores_mail_sent_by_another_lab_host():
    sender = lab_host(group("mx")[0])
    internet = lab_host(group("lab_internet")[0])
    token = uuid.uuid4().hex
    script = (
        "import smtplib; s = smtplib.SMTP('internet.lab.mailstack.test', 25); "
        "s.sendmail('probe@mx1.lab.mailstack.test', ['carol@remote-a.test'], "
        f"b'Subject: {token}\\r\\n\\r\\nhi\\r\\n'); s.quit()"
    )
    sender.run_expect([0], f'python3 -c "{script}"')
    for _ in range(20):
        hit = internet.run(f"grep -rl {token} /var/mail/internet/remote-a.test/new").stdout.split()
        if hit:
            break
        time.sleep(0.5)
    assert hit, "the message was not stored"
    assert "Delivered-To: carol@remote-a.test" in internet.file(hit[0]).content_string


def test_postfix_out_spreads_mail_over_every_relay():
    """Mailman's way out: postfix-out on the back-end -> the relays -> the internet host."""
    backend = lab_host(group("mailman_core")[0])
    internet = lab_host(group("lab_internet")[0])
    token = uuid.uuid4().hex[:12]
    count = 24
    script = (
        "import smtplib; s = smtplib.SMTP('127.0.0.1', 10025)\n"
        f"for i in range({count}):\n"
        f"    s.sendmail('list@lists.mailstack.test', [f'{token}-{{i}}@remote-b.test'],"
        f" b'Subject: {token}\\\\r\\\\n\\\\r\\\\nhi\\\\r\\\\n')\n"
        "s.quit()\n"
    )
    backend.run_expect([0], f"python3 -c {shlex.quote(script)}")
    find = f"grep -rl 'Subject: {token}' /var/mail/internet/remote-b.test/new"
    stored: list[str] = []
    for _ in range(60):
        stored = internet.run(find).stdout.split()
        if len(stored) >= count:
            break
        time.sleep(0.5)
    assert len(stored) == count
    received = internet.check_output(f"grep -h '^Received: from relay' $({find})")
    used = {relay for relay in group("relays") if f"[{HOSTVARS[relay]['mailstack__address']}])" in received}
    assert used == set(group("relays")), f"relays used: {sorted(used)}"


def test_a_list_post_reaches_every_member_through_the_relays():
    """MX host -> back-end :25 -> Mailman (LMTP) -> postfix-out -> relays -> internet."""
    sender = lab_host(group("mx")[0])
    internet = lab_host(group("lab_internet")[0])
    members = ["alice@remote-a.test", "bob@remote-a.test", "carol@remote-b.test", "dave@remote-b.test"]
    token = uuid.uuid4().hex[:12]
    backend = f"{group('mailman_core')[0]}.lab.mailstack.test"
    script = (
        f"import smtplib; s = smtplib.SMTP('{backend}', 25)\n"
        "s.sendmail('sender@remote-a.test', ['announce@lists.mailstack.test'],"
        " b'From: sender@remote-a.test\\r\\nTo: announce@lists.mailstack.test\\r\\n"
        f"Subject: post {token}\\r\\nMessage-ID: <{token}@remote-a.test>\\r\\n\\r\\nhello\\r\\n')\n"
        "s.quit()\n"
    )
    sender.run_expect([0], f"python3 -c {shlex.quote(script)}")
    find = f"grep -rl 'Subject: \\[announce\\] post {token}' /var/mail/internet"
    copies: list[str] = []
    for _ in range(120):
        copies = internet.run(find).stdout.split()
        if len(copies) >= len(members):
            break
        time.sleep(0.5)
    assert len(copies) == len(members)
    headers = internet.check_output(f"grep -h -e '^Delivered-To:' -e '^List-Id:' $({find})")
    delivered = [line.split()[1] for line in headers.splitlines() if line.startswith("Delivered-To")]
    assert sorted(delivered) == members
    assert headers.count("List-Id: Lab announcements <announce.lists.mailstack.test>") == len(members)


def test_mail_from_the_internet_takes_the_whole_path():
    """internet -> MX (by the lab's MX records, postscreen + rspamd + clamd) -> back-end ->
    Mailman -> postfix-out -> relays -> internet: every member gets one copy."""
    internet = lab_host(group("lab_internet")[0])
    mx_hosts = internet.check_output("dig +short MX lists.mailstack.test").splitlines()
    first_mx = sorted(mx_hosts, key=lambda rr: int(rr.split()[0]))[0].split()[1].rstrip(".")
    token = uuid.uuid4().hex[:12]
    script = (
        f"import smtplib; s = smtplib.SMTP('{first_mx}', 25, timeout=30)\n"
        "s.sendmail('sender@remote-b.test', ['announce@lists.mailstack.test'],"
        " b'From: sender@remote-b.test\\r\\nTo: announce@lists.mailstack.test\\r\\n"
        f"Subject: inbound {token}\\r\\nMessage-ID: <{token}@remote-b.test>\\r\\n\\r\\nhello\\r\\n')\n"
        "s.quit()\n"
    )
    internet.run_expect([0], f"python3 -c {shlex.quote(script)}")
    find = f"grep -rl 'Subject: \\[announce\\] inbound {token}' /var/mail/internet"
    copies: list[str] = []
    for _ in range(120):
        copies = internet.run(find).stdout.split()
        if len(copies) >= 4:
            break
        time.sleep(0.5)
    assert len(copies) == 4
    # The copies passed the MX (its Received header is in each).
    assert all(f"by {first_mx}" in internet.file(c).content_string for c in copies)


def test_the_mx_rejects_gtube_from_the_internet():
    internet = lab_host(group("lab_internet")[0])
    gtube = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
    script = (
        f"import smtplib; s = smtplib.SMTP('{group('mx')[0]}.lab.mailstack.test', 25, timeout=30)\n"
        "try:\n"
        "    s.sendmail('sender@remote-b.test', ['announce@lists.mailstack.test'],"
        f" b'Subject: spam\\r\\n\\r\\n{gtube}\\r\\n')\n"
        "except smtplib.SMTPDataError as e:\n"
        "    print(e.smtp_code)\n"
    )
    assert internet.check_output(f"python3 -c {shlex.quote(script)}") == "554"
