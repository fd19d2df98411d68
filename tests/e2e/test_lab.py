"""Smoke tests of a running lab (`make lab` first): `make lab-test`.

They talk to the lab's own containers only, through docker exec (testinfra's docker backend).
"""

import re
import shlex
import time
import uuid
from pathlib import Path

import pytest
import testinfra
from support import inventory

TOP = Path(__file__).resolve().parents[2]


INV = inventory.read("inventories/lab")
HOSTVARS = INV["_meta"]["hostvars"]
ALL = sorted(HOSTVARS)


def lab_host(name: str):
    return testinfra.get_host(f"docker://mailstack-lab-{name}")


def group(name: str) -> list[str]:
    return inventory.hosts(INV, name)


# The remote test domains of the lab's internet host (inventories/lab/group_vars/all): the lists'
# members live there (mailstack.site.numbered_addresses spreads them over these domains).
REMOTE_DOMAINS = HOSTVARS[group("lab_internet")[0]]["mailstack__lab_remote_domains"]


# One A query sent to the resolver itself over UDP (not getent: /etc/hosts, which the common role
# fills with every inventory host, would answer with the DNS server down). Prints the addresses.
DNS_QUERY = r"""
import random, socket, struct, sys
server, name = sys.argv[1], sys.argv[2]
qid = random.randrange(65536)
question = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\0" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + question, (server, 53))
data = s.recv(4096)
rid, flags, qd, an = struct.unpack(">HHHH", data[:8])
assert rid == qid and flags & 0x000F == 0, "rcode %d" % (flags & 0x000F)
pos = 12 + len(question)
for _ in range(an):
    while data[pos] and data[pos] < 0xC0:
        pos += data[pos] + 1
    pos += 2 if data[pos] >= 0xC0 else 1
    rtype, _, _, length = struct.unpack(">HHIH", data[pos:pos + 10])
    if rtype == 1:
        print(socket.inet_ntoa(data[pos + 10:pos + 14]))
    pos += 10 + length
"""


@pytest.mark.parametrize("name", [h for h in ALL if h not in group("lab_dns")])
def test_every_host_resolves_through_the_lab_dns(name, figure):
    host = lab_host(name)
    dns = HOSTVARS[group("lab_dns")[0]]["mailstack__address"]
    assert f"nameserver {dns}" in host.file("/etc/resolv.conf").content_string
    answered = {}
    for peer in ALL:
        out = host.run(f"python3 -c {shlex.quote(DNS_QUERY)} {dns} {peer}.lab.mailstack.test")
        assert out.rc == 0, f"{name} asking {dns} for {peer}: {out.stderr.strip()[-300:]}"
        answered[peer] = out.stdout.split()
    wrong = {peer: got for peer, got in answered.items() if got != [HOSTVARS[peer]["mailstack__address"]]}
    figure(f"{name}: resolver {dns} gave {len(ALL) - len(wrong)}/{len(ALL)} lab names their addresses")
    assert not wrong, wrong


def test_mx_records(figure):
    internet = lab_host(group("lab_internet")[0])
    for domain in ("remote-a.test", "remote-b.test"):
        assert internet.check_output(f"dig +short MX {domain}") == "10 internet.lab.mailstack.test."
    mx = sorted(internet.check_output("dig +short MX lists.mailstack.test").splitlines())
    figure(f"MX of lists.mailstack.test: {mx}; remote-a.test and remote-b.test: the internet host")
    assert mx == [f"{10 * (i + 1)} {h}.lab.mailstack.test." for i, h in enumerate(group("mx"))]


def test_real_domains_do_not_resolve(figure):
    internet = lab_host(group("lab_internet")[0])
    out = internet.run("dig +tries=1 +time=2 A example.com")
    status = out.stdout.split("status: ", 1)[-1].split(",", 1)[0]
    answers = re.search(r"ANSWER: (\d+)", out.stdout)
    figure(f"example.com from the internet host: {status}, {answers[1] if answers else '?'} answers")
    assert status in ("REFUSED", "NXDOMAIN")
    assert answers and answers[1] == "0"


def send(host, server: str, mail_from: str, rcpts: list[str], subjects: list[str], *, port: int = 25) -> None:
    """Send one message per subject over one SMTP session, from inside a lab container."""
    messages = [
        f"From: {mail_from}\r\nTo: {', '.join(rcpts)}\r\nSubject: {subject}\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@lab.test>\r\n\r\nhello\r\n".encode()
        for subject in subjects
    ]
    script = (
        f"import smtplib\ns = smtplib.SMTP({server!r}, {port}, timeout=30)\n"
        f"for m in {messages!r}:\n    s.sendmail({mail_from!r}, {rcpts!r}, m)\ns.quit()\n"
    )
    host.run_expect([0], f"python3 -c {shlex.quote(script)}")


# The internet host's mail store: a Maildir per remote domain.
STORE = "/var/mail/internet"


def stored_files(internet, text: str, where: str = STORE) -> list[str]:
    """The files of the internet host's store that contain text, in its Maildirs' new/ (tmp/ holds
    copies being written, which move away, so grep does not read it: a file renamed under it was an
    error of grep). grep's own failure (a missing store, an error) fails the check, so "no copies"
    is never an error read as an answer; a store that holds no Maildir yet holds no copy."""
    out = internet.run(f"grep -rlF --exclude-dir=tmp -e {shlex.quote(text)} {where}")
    assert out.rc in (0, 1), f"grep on {where} failed (exit {out.rc}): {out.stderr.strip()}"
    return [path for path in out.stdout.split() if "/new/" in path]


def stored_copies(internet, text: str, want: int, where: str = STORE) -> list[str]:
    """stored_files(text), once want of them are there."""
    copies: list[str] = []
    for _ in range(240):  # up to two minutes: a loaded machine slows Mailman's runners
        copies = stored_files(internet, text, where)
        if len(copies) >= want:
            break
        time.sleep(0.5)
    return copies


def test_internet_stores_mail_sent_by_another_lab_host(figure):
    internet = lab_host(group("lab_internet")[0])
    token = uuid.uuid4().hex
    send(lab_host(group("mx")[0]), "internet.lab.mailstack.test", "probe@mx1.lab.mailstack.test",
         ["carol@remote-a.test"], [token])
    hit = stored_copies(internet, token, 1, "/var/mail/internet/remote-a.test/new")
    figure(f"a message from {group('mx')[0]} to carol@remote-a.test: {len(hit)} copy stored")
    assert len(hit) == 1, "the message was not stored"
    assert "Delivered-To: carol@remote-a.test" in internet.file(hit[0]).content_string


def test_postfix_out_spreads_mail_over_every_relay(figure):
    """Mailman's way out: postfix-out on the back-end -> the relays -> the internet host."""
    internet = lab_host(group("lab_internet")[0])
    token = uuid.uuid4().hex[:12]
    count = 24
    backend = lab_host(group("mailman_core")[0])
    for i in range(count):  # one recipient each, as Mailman sends to a list's members
        send(backend, "127.0.0.1", "list@lists.mailstack.test", [f"{token}-{i}@remote-b.test"],
             [f"{token} {i}"], port=10025)
    stored = stored_copies(internet, f"Subject: {token}", count)
    assert len(stored) == count
    received = internet.check_output(f"grep -h '^Received: from relay' {' '.join(stored)}")
    used = {relay for relay in group("relays") if f"[{HOSTVARS[relay]['mailstack__address']}])" in received}
    figure(f"{len(stored)}/{count} messages from postfix-out stored, relays used: {', '.join(sorted(used))}")
    assert used == set(group("relays")), f"relays used: {sorted(used)}"


MEMBERS = ["alice@remote-a.test", "bob@remote-a.test", "carol@remote-b.test", "dave@remote-b.test"]


def test_a_list_post_reaches_every_member_through_the_relays(figure):
    """MX host -> back-end :25 -> Mailman (LMTP) -> postfix-out -> relays -> internet."""
    internet = lab_host(group("lab_internet")[0])
    token = uuid.uuid4().hex[:12]
    send(lab_host(group("mx")[0]), f"{group('mailman_core')[0]}.lab.mailstack.test", "sender@remote-a.test",
         ["announce@lists.mailstack.test"], [f"post {token}"])
    copies = stored_copies(internet, f"Subject: [announce] post {token}", len(MEMBERS))
    assert len(copies) == len(MEMBERS)
    headers = internet.check_output(f"grep -h -e '^Delivered-To:' -e '^List-Id:' {' '.join(copies)}")
    delivered = [line.split()[1] for line in headers.splitlines() if line.startswith("Delivered-To")]
    listid = headers.count("List-Id: Lab announcements <announce.lists.mailstack.test>")
    figure(
        f"post to announce@ sent to the back-end: {len(delivered)}/{len(MEMBERS)} members, "
        f"List-Id on {listid}"
    )
    assert sorted(delivered) == MEMBERS
    assert listid == len(MEMBERS)


def test_mail_from_the_internet_takes_the_whole_path(figure):
    """internet -> MX (by the lab's MX records, postscreen + rspamd + clamd) -> back-end ->
    Mailman -> postfix-out -> relays -> internet: every member gets one copy."""
    internet = lab_host(group("lab_internet")[0])
    mx_hosts = internet.check_output("dig +short MX lists.mailstack.test").splitlines()
    first_mx = sorted(mx_hosts, key=lambda rr: int(rr.split()[0]))[0].split()[1].rstrip(".")
    token = uuid.uuid4().hex[:12]
    send(internet, first_mx, "sender@remote-b.test", ["announce@lists.mailstack.test"], [f"inbound {token}"])
    copies = stored_copies(internet, f"Subject: [announce] inbound {token}", len(MEMBERS))
    assert len(copies) == len(MEMBERS)
    # The copies passed the MX (its Received header is in each).
    through = sum(f"by {first_mx}" in internet.file(c).content_string for c in copies)
    figure(f"post from the internet to {first_mx}: {len(copies)}/{len(MEMBERS)} copies, {through} through it")
    assert through == len(MEMBERS)

