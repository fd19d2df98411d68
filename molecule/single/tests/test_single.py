"""The single-server variant, driven from the lab's internet host as a sender and an attacker would.

The list domain's MX record (from the lab DNS) names the server; the internet host sends over SMTP
(tests/support/smtpclient.py, run inside the container) and stores every copy the server's postfix-out
delivers to the remote test domains by MX lookup.
"""

import email
import time
import uuid

import pytest
from support.smtpclient import (
    ATTACK_CONTENTS,
    assert_refused_as_attack,
    extra_address,
    first_refusal,
    flood,
    message,
    peer,
    probe,
    public_listeners,
    refused,
    send,
)

testinfra_hosts = ["ansible://single-internet"]

SERVER = "single-server.single.test"
SERVER_ADDRESS = "172.31.2.10"
INTERNET_ADDRESS = "172.31.2.100"
FLOOD_ADDRESS = "172.31.2.200"  # a second address of the internet host, for the flood only
LIST = "team@lists.single.test"
MEMBERS = {"alice@remote-a.test", "bob@remote-a.test", "carol@remote-b.test", "dave@remote-b.test"}
SENDER = "sender@remote-a.test"
HELO = "single-internet.single.test"
STORE = "/var/mail/internet"


@pytest.fixture(scope="module")
def server(host):
    return peer(host, "single-server")


def post(token: str, **kwargs) -> bytes:
    return message(SENDER, LIST, f"single {token}", f"<{token}@remote-a.test>", **kwargs)


def attempt(host, rcpts: list[str], msg: bytes | None, **kwargs) -> dict:
    """One SMTP transaction from the internet host to the server's port 25."""
    return send(host, SERVER, SENDER, rcpts, msg, helo=HELO, **kwargs)


def copies(host, token: str) -> list[str]:
    """The stored copies (files) that carry token."""
    out = host.run(f"grep -rlF {token} {STORE} 2>/dev/null")
    return [f for f in out.stdout.split() if "/new/" in f]


def wait_copies(host, token: str, count: int, timeout: float = 120) -> list[str]:
    deadline = time.monotonic() + timeout
    found = copies(host, token)
    while len(found) < count and time.monotonic() < deadline:
        time.sleep(1)
        found = copies(host, token)
    time.sleep(2)  # a duplicate would arrive right behind
    return copies(host, token)


def queued(server) -> dict[str, str]:
    """The last line of each queue listing of the server: the primary instance (`-`), postfix-out."""
    out = {}
    for instance in ("-", "postfix-out"):
        listing = server.check_output(f"postmulti -i {instance} -x postqueue -p").splitlines()
        out[instance] = listing[-1] if listing else "(no output)"
    return out


def test_the_list_domain_mx_is_the_server_and_nothing_real_resolves(host):
    assert host.check_output("dig +short MX lists.single.test") == f"10 {SERVER}."
    assert host.check_output("dig +short MX remote-a.test") == "10 single-internet.single.test."
    assert host.check_output(f"dig +short -x {SERVER_ADDRESS}") == f"{SERVER}."
    for name in ("debian.org", "example.com", "nonexistent.single.test"):
        out = host.run(f"dig +tries=1 +time=2 A {name}")
        assert out.rc == 0
        assert "status: NOERROR" not in out.stdout or "ANSWER: 0" in out.stdout, name


def test_from_the_internet_only_port_25_answers(host, server):
    listening = public_listeners(server)
    seen = probe(host, [f"{SERVER_ADDRESS}:{p}" for p in sorted({*listening, 22, 25})])
    opened = sorted(int(t.rsplit(":", 1)[1]) for t, state in seen.items() if state == "open")
    print(f"listening beyond loopback: {listening}; seen from the internet: {seen}")
    assert opened == [25]
    # Among the closed ones: Mailman's LMTP and REST API, PostgreSQL, rspamd, clamd (whichever
    # listen beyond loopback), each refused or dropped by the firewall.
    assert all(state in ("refused", "dropped") for t, state in seen.items() if not t.endswith(":25")), seen


def test_a_post_reaches_every_member_exactly_once(host, server):
    token = uuid.uuid4().hex
    result = attempt(host, [LIST], post(token))
    assert first_refusal(result) is None, result
    files = wait_copies(host, token, len(MEMBERS))
    stored = [email.message_from_string(host.file(f).content_string) for f in files]
    got = sorted(m["Delivered-To"] for m in stored)
    print(f"{len(got)} copies for {len(MEMBERS)} members: {got}")
    assert got == sorted(MEMBERS)
    for copy in stored:
        assert copy["List-Id"].endswith("<team.lists.single.test>"), copy["List-Id"]
        assert copy["Subject"].startswith("[team] ")
        received = [" ".join(r.split()) for r in copy.get_all("Received")]
        # Delivered by the server itself (postfix-out, by MX lookup) ...
        assert f"[{SERVER_ADDRESS}]" in received[0] and "by single-internet.single.test" in received[0]
        # ... after its port 25 took the post from the internet host.
        assert any(f"[{INTERNET_ADDRESS}]" in r and f"by {SERVER}" in r for r in received), received
    host.run(f"rm -f {' '.join(files)}")
    deadline = time.monotonic() + 60
    while (left := queued(server)) and time.monotonic() < deadline:
        if all(line == "Mail queue is empty" for line in left.values()):
            break
        time.sleep(2)
    assert all(line == "Mail queue is empty" for line in left.values()), left


@pytest.mark.parametrize("content", ATTACK_CONTENTS)
def test_spam_and_viruses_are_refused_at_data(host, content):
    token = uuid.uuid4().hex
    refusal = first_refusal(attempt(host, [LIST], post(token, **ATTACK_CONTENTS[content])))
    print(f"{content}: {refusal}")
    assert_refused_as_attack(content, refusal)
    time.sleep(3)
    assert copies(host, token) == []


def test_an_unknown_list_address_is_refused_during_the_session(host):
    rcpt = f"nosuchlist-{uuid.uuid4().hex[:8]}@lists.single.test"
    step, code, text = refused(attempt(host, [rcpt], None))
    assert (step, code) == ("rcpt", 550)
    assert text.startswith(f"5.1.1 <{rcpt}>: Recipient address rejected")


def test_the_server_does_not_relay_for_the_internet(host):
    step, code, text = refused(attempt(host, ["victim@remote-b.test"], None))
    assert (step, code) == ("rcpt", 554)
    assert "Relay access denied" in text


def test_oversized_messages_are_refused_with_552(host, server):
    limit = int(server.check_output("postconf -h message_size_limit"))
    step, code, text = refused(attempt(host, [LIST], post("declared"), size=limit + 1))
    assert (step, code) == ("mail", 552) and text.startswith("5.3.4")
    token = uuid.uuid4().hex
    step, code, text = refused(attempt(host, [LIST], post(token), pad=limit + 100_000))
    assert (step, code) == ("data", 552) and text.startswith("5.3.4")
    assert copies(host, token) == []


def test_a_flood_from_one_client_is_slowed_without_affecting_another(host, server):
    rate = int(server.check_output("postconf -h smtpd_client_connection_rate_limit"))
    connections = rate + 20
    with extra_address(host, FLOOD_ADDRESS) as source:
        result = flood(host, SERVER, source, connections)
    print(f"{connections} connections in {result['seconds']:.1f} s: {result['replies']} (limit {rate}/min)")
    assert result["seconds"] < 60, "the flood took over a minute: the rate limit was not tested"
    assert result["greeted"] <= rate
    assert result["limited"] >= connections - rate
    # The internet host's own address, straight after: accepted, and delivered to every member.
    token = uuid.uuid4().hex
    result = attempt(host, [LIST], post(token))
    assert first_refusal(result) is None, result
    files = wait_copies(host, token, len(MEMBERS))
    host.run(f"rm -f {' '.join(files)}")
    assert len(files) == len(MEMBERS)


def test_internet_host_checks_refuse_bad_files(host):
    """The validate: programs of lab_internet (roles/lab_internet/files/): the live files pass, a
    pcre map with a broken pattern and a main.cf with an unknown parameter are refused."""
    checks = "/usr/local/libexec/mailstack/lab-internet-check"
    assert host.run(f"{checks}-pcre-map /etc/postfix/virtual_mailbox.pcre").rc == 0
    assert host.run(f"{checks}-main-cf /etc/postfix/main.cf").rc == 0
    try:
        host.run_test("printf '/^(unclosed@/ OK\\n' > /tmp/bad.pcre")
        bad_map = host.run(f"{checks}-pcre-map /tmp/bad.pcre")
        assert bad_map.rc == 1, bad_map.stdout + bad_map.stderr
        host.run_test("cp /etc/postfix/main.cf /tmp/bad.cf")
        host.run_test("echo 'no_such_parameter = 1' >> /tmp/bad.cf")
        bad_cf = host.run(f"{checks}-main-cf /tmp/bad.cf")
        assert bad_cf.rc == 1, bad_cf.stdout + bad_cf.stderr
        assert "no_such_parameter" in bad_cf.stderr
    finally:
        host.run("rm -f /tmp/bad.pcre /tmp/bad.cf")
