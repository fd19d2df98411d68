"""The relay cluster's life on a running lab (`make lab-test`): list mail spread over the relays
and DKIM-signed, a relay stopped mid-delivery, a relay added with playbooks/scale.yml and removed
with playbooks/remove-node.yml while it holds deferred mail, bounces that find their way back to
Mailman, and relays that take mail from the back-ends only.

Each check prints its figure. Copies are counted on the lab's `internet` host, which stores one
file per recipient; the files a test counted are deleted at its end.
"""

import json
import os
import shlex
import shutil
import subprocess
import time
import uuid

import e2e
import pytest
from ansible_collections.mailstack.site.plugins.plugin_utils.addresses import numbered_addresses
from e2e import (
    MX,
    copies,
    delete,
    internet,
    once_each,
    post,
    queue_size,
    recipients,
    settled,
    wait_copies,
)
from support import smtpclient
from test_lab import HOSTVARS, REMOTE_DOMAINS, TOP, group, lab_host, send

BULK = "bulk@lists.mailstack.test"
BULK_MEMBERS = 1000
INTERNET = group("lab_internet")[0]
BACKEND = group("mailman_core")[0]
RELAYS = group("relays")
WEBS = group("mailman_web")


def relay_shares(
    files: list[str], relays: list[str], addresses: dict[str, str] | None = None
) -> dict[str, int]:
    """How many of the copies came through each relay (the internet host's Received: header).
    Relays outside the lab inventory need their address in addresses."""
    script = (
        "import json, sys\naddrs = json.loads(sys.argv[1])\nshares = dict.fromkeys(addrs.values(), 0)\n"
        "for p in sys.argv[2:]:\n"
        "    head = open(p, errors='replace').read().split('\\n\\n', 1)[0]\n"
        "    for name, addr in addrs.items():\n"
        "        if '[' + addr + '])' in head.split('Received: from', 2)[1]:\n"
        "            shares[addr] += 1\n"
        "print(json.dumps(shares))\n"
    )
    addrs = {r: (addresses or {}).get(r) or HOSTVARS[r]["mailstack__address"] for r in relays}
    total = dict.fromkeys(relays, 0)
    for start in range(0, len(files), 500):
        chunk = files[start : start + 500]
        got = json.loads(
            internet().check_output(
                f"python3 -c {shlex.quote(script)} {shlex.quote(json.dumps(addrs))} " + " ".join(chunk)
            )
        )
        for relay, addr in addrs.items():
            total[relay] += got[addr]
    return total


def check_once_each(files: list[str], what: str, figure) -> None:
    """Every member of bulk@ holds exactly one of the copies (files); reported as a figure."""
    expected = set(numbered_addresses("member", BULK_MEMBERS, REMOTE_DOMAINS))
    count = once_each(recipients(files), expected)
    figure(f"{what}: {count}")
    assert count.exact, count


DKIM_VERIFY = r"""
import sys, dkim
ok = bad = 0
for path in sys.argv[1:]:
    data = open(path, 'rb').read()
    if b'\nDKIM-Signature:' in data.split(b'\n\n', 1)[0] and dkim.verify(data):
        ok += 1
    else:
        bad += 1
        print('not verified:', path, file=sys.stderr)
print(ok, bad)
"""


def test_the_list_domains_dkim_spf_and_dmarc_records_are_published(figure):
    txt = internet().check_output("dig +short TXT mailstack1._domainkey.lists.mailstack.test")
    assert "v=DKIM1; k=rsa; p=" in txt.replace('" "', "")
    spf = internet().check_output("dig +short TXT lists.mailstack.test")
    for relay in RELAYS:
        assert f"ip4:{HOSTVARS[relay]['mailstack__address']}" in spf
    dmarc = internet().check_output("dig +short TXT _dmarc.lists.mailstack.test")
    figure(f"published: DKIM key mailstack1, SPF {spf}, DMARC {dmarc}")
    assert "v=DMARC1" in dmarc


def test_a_post_to_1000_members_arrives_once_each_signed_and_spread_over_the_relays(figure):
    token = f"bulk-{uuid.uuid4().hex[:12]}"
    t0 = time.monotonic()
    post(BULK, token)
    files = wait_copies(token, BULK_MEMBERS)
    elapsed = time.monotonic() - t0
    try:
        check_once_each(files, f"post to {BULK_MEMBERS} members in {elapsed:.1f} s", figure)
        shares = relay_shares(files, RELAYS)
        figure("relay shares: " + ", ".join(f"{r} {n}" for r, n in shares.items()))
        assert all(shares.values()), shares
        assert sum(shares.values()) == BULK_MEMBERS
        verified, failed = 0, 0
        for start in range(0, len(files), 250):
            chunk = files[start : start + 250]
            out = internet().check_output(f"python3 -c {shlex.quote(DKIM_VERIFY)} " + " ".join(chunk))
            ok, bad = map(int, out.split())
            verified, failed = verified + ok, failed + bad
        figure(f"DKIM: {verified}/{len(files)} copies verified against the published key")
        assert (verified, failed) == (BULK_MEMBERS, 0)
        settle = settled()
        files = copies(token)
        check_once_each(files, f"the post recounted once every queue emptied ({settle:.0f} s)", figure)
    finally:
        delete(files)


def test_a_relay_stopped_mid_delivery_loses_and_duplicates_nothing(figure):
    """relay2 holds its share (its deliveries deferred, as to a slow destination), is stopped with
    that mail in its queue, a second post goes out while it is down (postfix-out fails over), then
    it starts again and delivers what it held: every member gets exactly one copy of each post."""
    victim = RELAYS[1]
    relay = lab_host(victim)
    first, second = (f"stop-{uuid.uuid4().hex[:12]}" for _ in range(2))
    files: list[str] = []
    try:
        relay.check_output("postconf -e defer_transports=smtp && postfix reload")
        post(BULK, first)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and (queue_size(victim) == 0 or queue_size(BACKEND) > 0):
            time.sleep(1)
        held = queue_size(victim)
        arrived = len(copies(first))
        assert held > 0 and arrived < BULK_MEMBERS, "relay2 took no share of the post"
        relay.check_output("systemctl stop postfix@-")
        figure(f"{victim} stopped holding {held} messages; {arrived} copies already delivered")
        post(BULK, second)
        second_files = wait_copies(second, BULK_MEMBERS)
        files += second_files
        check_once_each(second_files, f"post while {victim} is down", figure)
        assert relay_shares(second_files, [victim])[victim] == 0
    finally:
        relay.check_output("postconf -X defer_transports && systemctl start postfix@-")
    # Nothing forces the delivery: the relay's own retry of its deferred queue (the lab's backoff,
    # inventories/lab/group_vars/relays/postfix.yml) delivers what it held.
    t0 = time.monotonic()
    first_files = wait_copies(first, BULK_MEMBERS)
    figure(f"{victim} started again: its own retry delivered what it held in {time.monotonic() - t0:.0f} s")
    files += first_files
    try:
        check_once_each(first_files, f"post held by {victim} when it stopped", figure)
        settle = settled()
        for token, what in ((first, "held by the stopped relay"), (second, "sent while it was down")):
            recounted = copies(token)
            files += recounted
            check_once_each(recounted, f"post {what}, recounted after {settle:.0f} s to settle", figure)
    finally:
        delete(files)


def mailman_rest(method: str, path: str, data: dict | None = None) -> dict:
    return e2e.mailman_rest(BACKEND, method, path, data)


def bounce_score(member_id: str, want: int, timeout: float = 180) -> int:
    deadline = time.monotonic() + timeout
    score = 0
    while time.monotonic() < deadline:
        score = mailman_rest("GET", f"members/{member_id}")["bounce_score"]
        if score >= want:
            break
        time.sleep(2)
    return score


@pytest.fixture
def bouncing_member():
    """A member of announce@ whose address the internet host refuses (550 5.1.1 at RCPT)."""
    address = f"unknown-{uuid.uuid4().hex[:10]}@remote-c.test"
    mailman_rest(
        "POST",
        "members",
        {
            "list_id": "announce.lists.mailstack.test",
            "subscriber": address,
            "pre_verified": "true",
            "pre_confirmed": "true",
            "pre_approved": "true",
        },
    )
    found = mailman_rest("GET", f"members/find?list_id=announce.lists.mailstack.test&subscriber={address}")
    member_id = found["entries"][0]["member_id"]
    yield address, member_id
    mailman_rest("DELETE", f"members/{member_id}")


def test_a_member_address_refused_by_its_server_raises_its_bounce_score(bouncing_member, figure):
    """The relay's bounce goes to the list's -bounces address (never to the poster), by MX lookup to
    the MX nodes, on to the back-end, where Mailman counts it against the member."""
    address, member_id = bouncing_member
    assert mailman_rest("GET", f"members/{member_id}")["bounce_score"] == 0
    token = f"bounce-{uuid.uuid4().hex[:12]}"
    post("announce@lists.mailstack.test", token)
    t0 = time.monotonic()
    score = bounce_score(member_id, 1)
    figure(f"{address}: bounce score {score} after {time.monotonic() - t0:.1f} s")
    assert score == 1
    files = wait_copies(token, 4, timeout=60)
    try:
        # The four real members got the post; the poster got no bounce (it would quote the token).
        poster = "Delivered-To: sender@remote-a.test"
        to_poster = [f for f in files if poster in internet().file(f).content_string]
        figure(f"copies stored: {len(files)}, bounces to the poster: {len(to_poster)}")
        assert len(files) == 4
        assert to_poster == []
    finally:
        delete(files)


def test_the_mx_takes_verp_bounces_to_the_back_end(bouncing_member, figure):
    """A bounce to Mailman's VERP form (list-bounces+member=domain@) passes the MX's recipient
    check and reaches Mailman, which attributes it to the member it names."""
    address, member_id = bouncing_member
    local, domain = address.split("@")
    verp = f"announce-bounces+{local}={domain}@lists.mailstack.test"
    # A delivery status notification (RFC 3464) with a permanent failure, as the member's server
    # would send it: Mailman counts a VERPed bounce only when it reports a permanent failure.
    message = (
        f"From: MAILER-DAEMON@{domain}\r\nTo: {verp}\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@{domain}>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="dsn"\r\n\r\n'
        "--dsn\r\nContent-Type: text/plain\r\n\r\nThe mailbox does not exist.\r\n"
        "--dsn\r\nContent-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {INTERNET}.lab.mailstack.test\r\n\r\n"
        f"Final-Recipient: rfc822; {address}\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n--dsn--\r\n"
    )
    script = (
        f"import smtplib\ns = smtplib.SMTP('{MX}.lab.mailstack.test', 25, timeout=30)\n"
        f"print(s.sendmail('', [{verp!r}], {message.encode()!r}))\ns.quit()\n"
    )
    assert internet().check_output(f"python3 -c {shlex.quote(script)}") == "{}"
    score = bounce_score(member_id, 1)
    figure(f"VERP bounce for {address} through {MX}: bounce score {score}")
    assert score == 1


def test_relays_take_mail_from_the_back_ends_only(figure):
    """The firewall drops everyone else on port 25, and Postfix refuses any client outside its
    mynetworks (tried from the relay's own address, which the firewall lets through)."""
    targets = {relay: f"{HOSTVARS[relay]['mailstack__address']}:25" for relay in RELAYS}
    seen = {source: smtpclient.probe(lab_host(source), list(targets.values())) for source in (INTERNET, MX)}
    for relay in RELAYS:
        addr = HOSTVARS[relay]["mailstack__address"]
        states = {source: seen[source][targets[relay]] for source in seen}
        assert set(states.values()) == {"dropped"}, f"{relay}:25 from {states}"
        # smtpd_delay_reject is off on a relay: the refusal comes with the greeting.
        script = (
            "import smtplib\ntry:\n"
            f"    s = smtplib.SMTP({addr!r}, 25, timeout=10, source_address=({addr!r}, 0))\n"
            "    s.ehlo('probe.test')\n    s.mail('probe@remote-a.test')\n"
            "    print(s.rcpt('x@remote-b.test')[0])\n"
            "except smtplib.SMTPConnectError as e:\n    print(e.smtp_code)\n"
        )
        code = lab_host(relay).check_output(f"python3 -c {shlex.quote(script)}")
        figure(
            f"{relay}: port 25 from "
            + ", ".join(f"{src} {state}" for src, state in states.items())
            + f"; a client outside mynetworks gets {code}"
        )
        assert code == "554"
    # A back-end is taken.
    backend = lab_host(BACKEND)
    addr = HOSTVARS[RELAYS[0]]["mailstack__address"]
    script = (
        f"import smtplib\ns = smtplib.SMTP({addr!r}, 25, timeout=10)\ns.ehlo('probe.test')\n"
        "s.mail('probe@lists.mailstack.test')\nprint(s.rcpt('x@remote-b.test')[0])\ns.rset()\n"
    )
    assert backend.check_output(f"python3 -c {shlex.quote(script)}") == "250"


def test_a_web_node_may_not_send_as_a_list_through_a_relay(figure):
    """The web front-ends are in the relays' mynetworks for Postorius' own mail; a sender in a list
    domain from them is refused at MAIL FROM (so never signed), while the back-end's is taken. The
    mail Postorius sends through the relays is test_web.py's sign-up confirmation."""
    web = group("mailman_web")[0]
    postorius = f"postorius@{HOSTVARS[web]['mailstack__domain']}"
    seen = []
    for relay in RELAYS:
        server = HOSTVARS[relay]["mailstack__address"]
        for sender in ("announce@lists.mailstack.test", "crowd-bounces@lists.mailstack.test"):
            result = smtpclient.send(lab_host(web), server, sender, ["x@remote-a.test"], None,
                                     helo=f"{web}.test")
            step, code, text = smtpclient.refused(result)
            assert (step, code) == ("mail", 554), (relay, sender, result)
            assert "list addresses are sent by the list back-ends only" in text, (relay, sender, result)
            seen.append(code)
        own = smtpclient.send(lab_host(web), server, postorius, ["x@remote-a.test"], None, helo=f"{web}.test")
        assert smtpclient.first_refusal(own) is None, (relay, own)
        listed = smtpclient.send(lab_host(BACKEND), server, "announce@lists.mailstack.test",
                                 ["x@remote-a.test"], None, helo=f"{BACKEND}.test")
        assert smtpclient.first_refusal(listed) is None, (relay, listed)
    figure(f"{web} as a list address: {len(seen)} of {len(seen)} MAIL FROM refused with 554 on "
           f"{len(RELAYS)} relays; as {postorius} and {BACKEND} as announce@: accepted")


NEW_RELAY = "relay4"
NEW_RELAY_ADDRESS = "172.30.0.34"
SECRET_DIR = TOP / "secret" / "lab"


def lab(*args: str, extra_inventory: str) -> None:
    env = {**os.environ, "MAILSTACK_LAB_EXTRA_INVENTORY": extra_inventory}
    subprocess.run([str(TOP / "scripts" / "lab"), *args], cwd=TOP, env=env, check=True)


def postfix_out_hops() -> str:
    return lab_host(BACKEND).check_output(
        "postmulti -i postfix-out -x postconf -h sender_dependent_default_transport_maps"
    )


def web_postfix_hops() -> dict[str, str]:
    """Every web node's loopback Postfix: the relays it spreads its mail over."""
    return {
        web: lab_host(web).check_output("postconf -h sender_dependent_default_transport_maps") for web in WEBS
    }


def test_a_relay_added_with_scale_and_removed_with_its_deferred_mail_handed_over(tmp_path, figure):
    extra = tmp_path / "relay4.yml"
    extra.write_text(
        json.dumps(
            {
                "all": {
                    "children": {
                        "relays": {
                            "hosts": {
                                NEW_RELAY: {
                                    "mailstack__address": NEW_RELAY_ADDRESS,
                                    "mailstack__secret_dir": str(SECRET_DIR),
                                }
                            }
                        }
                    }
                }
            }
        )
    )
    files: list[str] = []
    removed = deferring = False
    # scale.yml writes the records to publish with the new relay, and the relay's secrets, into the
    # lab's secret directory (remove-node.yml deletes the secrets): put back what the lab was
    # converged from, so the next `scripts/lab ensure` does not converge again for a relay that is gone.
    zone = SECRET_DIR / "dns-records.zone"
    published = zone.read_bytes()
    try:
        lab("up", extra_inventory=str(extra))
        t0 = time.monotonic()
        limit = f"{NEW_RELAY},mailman_core,mailman_web"
        lab("play", "playbooks/scale.yml", "--limit", limit, extra_inventory=str(extra))
        figure(f"scale.yml --limit {limit}: {time.monotonic() - t0:.0f} s")
        assert f"[{NEW_RELAY_ADDRESS}]:25" in postfix_out_hops()
        # The web nodes send sign-up mail through the relays too: they learn the new one.
        assert all(f"[{NEW_RELAY_ADDRESS}]:25" in hops for hops in web_postfix_hops().values())
        secrets = SECRET_DIR / "rspamd" / NEW_RELAY
        assert (secrets / "controller").is_file()

        # In service: postfix-out sends some of 40 messages through it.
        token = f"scale-{uuid.uuid4().hex[:12]}"
        for i in range(40):
            send(
                lab_host(BACKEND),
                "127.0.0.1",
                "list@lists.mailstack.test",
                [f"{token}-{i}@remote-b.test"],
                [f"{token} {i}"],
                port=10025,
            )
        stored = wait_copies(token, 40, timeout=120)
        files += stored
        share = relay_shares(stored, [NEW_RELAY], {NEW_RELAY: NEW_RELAY_ADDRESS})[NEW_RELAY]
        figure(f"{NEW_RELAY} carried {share}/40 messages after scale.yml")
        assert len(stored) == 40 and share > 0

        # Deferred mail on the relay: the internet host answers it 4xx (as a destination that
        # throttles one sender), then the relay is removed.
        new = lab_host(NEW_RELAY)
        defer = f"smtpd_client_restrictions=check_client_access inline:{{{NEW_RELAY_ADDRESS}=DEFER}}"
        internet().check_output(f"postconf -e '{defer}' && postfix reload")
        deferring = True
        held = f"held-{uuid.uuid4().hex[:12]}"
        for i in range(20):
            rcpt = f"{held}-{i}@remote-a.test"
            send(lab_host(BACKEND), NEW_RELAY_ADDRESS, "list@lists.mailstack.test", [rcpt], [f"{held} {i}"])
        deadline = time.monotonic() + 60
        while queue_size(NEW_RELAY) < 20 and time.monotonic() < deadline:
            time.sleep(1)
        assert queue_size(NEW_RELAY) == 20
        t0 = time.monotonic()
        drain = ["-e", f"node={NEW_RELAY}", "-e", "mailstack__drain_timeout=10"]
        lab("play", "playbooks/remove-node.yml", *drain, extra_inventory=str(extra))
        removed = True
        internet().check_output("postconf -X smtpd_client_restrictions && postfix reload")
        deferring = False
        figure(f"remove-node.yml: {time.monotonic() - t0:.0f} s")
        moved = wait_copies(held, 20, timeout=120)
        files += moved
        got = recipients(moved)
        figure(
            f"deferred on {NEW_RELAY}: {len(set(got))}/20 delivered through the others, "
            f"{len(got) - len(set(got))} duplicates, {queue_size(NEW_RELAY)} left in its queue"
        )
        assert sorted(got) == sorted(f"{held}-{i}@remote-a.test" for i in range(20))
        assert relay_shares(moved, [NEW_RELAY], {NEW_RELAY: NEW_RELAY_ADDRESS})[NEW_RELAY] == 0
        assert queue_size(NEW_RELAY) == 0
        assert new.run("systemctl is-active postfix@-").stdout.strip() != "active"
        assert f"[{NEW_RELAY_ADDRESS}]:25" not in postfix_out_hops()
        web_hops = web_postfix_hops()
        figure(
            f"after remove-node.yml, web nodes listing {NEW_RELAY}: "
            f"{sum(f'[{NEW_RELAY_ADDRESS}]:25' in hops for hops in web_hops.values())}/{len(web_hops)}"
        )
        assert not any(f"[{NEW_RELAY_ADDRESS}]:25" in hops for hops in web_hops.values()), web_hops
        assert not secrets.exists(), f"remove-node.yml left {NEW_RELAY}'s secrets in {secrets}"
    finally:
        # The controller's files first: they cannot fail, and the lab commands below can.
        zone.write_bytes(published)
        shutil.rmtree(SECRET_DIR / "rspamd" / NEW_RELAY, ignore_errors=True)  # when the test failed first
        if deferring:
            internet().run("postconf -X smtpd_client_restrictions && postfix reload")
        try:
            delete(files)
            lab("destroy", NEW_RELAY, extra_inventory=str(extra))
        finally:
            if not removed:  # the relays' clients may still list the new relay: back to the lab's relays
                for play in ("playbooks/mailman_core.yml", "playbooks/web-postfix.yml"):
                    subprocess.run([str(TOP / "scripts" / "lab"), "play", play], cwd=TOP, check=True)


def run_refused(*args: str) -> str:
    """Run scripts/lab with args, expect it to fail, return its output with whitespace runs made one
    space (Ansible prints an assert's message folded over lines in its YAML result)."""
    cmd = [str(TOP / "scripts" / "lab"), *args]
    proc = subprocess.run(cmd, cwd=TOP, capture_output=True, text=True, check=False)
    assert proc.returncode != 0, proc.stdout[-2000:]
    return " ".join((proc.stdout + proc.stderr).split())


def test_removing_every_relay_is_refused_before_anything_changes(figure):
    out = run_refused("play", "playbooks/remove-node.yml", "-e", "node=" + ",".join(RELAYS))
    assert f"every relay is draining ({', '.join(RELAYS)}): postfix-out would have no next hop" in out
    assert out.count("TASK [") == 1  # the topology's derivation, and nothing after it
    figure(f"remove-node.yml -e node={','.join(RELAYS)}: refused, no task ran on a host")


def test_scale_refuses_a_run_beyond_relays_and_their_clients_or_without_them(figure):
    out = run_refused("play", "playbooks/scale.yml", "--limit", f"{RELAYS[0]},mailman_core,mailman_web,{MX}")
    assert f"names hosts that are neither relays nor their clients: {MX}" in out
    out = run_refused("play", "playbooks/scale.yml", "--limit", f"{RELAYS[0]},mailman_core")
    assert f"leaves out clients of the relays, which would keep the old relay set: {', '.join(WEBS)}" in out
    out = run_refused("play", "playbooks/scale.yml")
    assert "No --limit was given" in out
    figure(f"scale.yml with {MX} in the limit, without the web nodes, without --limit: refused, each named")
