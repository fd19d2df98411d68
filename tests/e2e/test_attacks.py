"""Attacks from the lab's internet host, as a spammer or an abuser would make them: spam and
viruses, unknown list addresses, relaying through any host of the site, oversized messages, SMTP
smuggling with a bare newline, and a flood of connections from one client while another client
posts. And what the MX offers an honest sender: postscreen in front, STARTTLS, and a 4xx (never a
5xx) for an address it cannot verify while the back-end is down.

(Which ports answer the internet at all is test_firewall.py's first check.)
"""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from e2e import active_backend, copies, delete, headers, internet, wait_copies
from support.smtpclient import (
    ATTACK_CONTENTS,
    RAW_CLIENT,
    assert_refused_as_attack,
    extra_address,
    first_refusal,
    flood,
    message,
    refused,
    run_python,
    send,
)
from test_lab import HOSTVARS, group, lab_host

LIST = "announce@lists.mailstack.test"
MEMBERS = 4
SENDER = "sender@remote-a.test"
HELO = "internet.lab.mailstack.test"
MXS = group("mx")
# Every host of the site (the lab's DNS and internet hosts are not part of it).
SITE = [h for h in sorted(HOSTVARS) if h not in group("lab_dns") + group("lab_internet")]


def fqdn(host: str) -> str:
    return f"{host}.lab.mailstack.test"


def attempt(server: str, rcpts: list[str], msg: bytes | None, **kwargs) -> dict:
    """One SMTP transaction from the internet host to server (a name or an address)."""
    return send(internet(), server, SENDER, rcpts, msg, helo=HELO, **kwargs)


def post(token: str, **kwargs) -> bytes:
    return message(SENDER, LIST, f"e2e {token}", f"<{token}@remote-a.test>", **kwargs)


@pytest.mark.parametrize("mx", MXS)
@pytest.mark.parametrize("content", ATTACK_CONTENTS)
def test_spam_and_viruses_are_refused_at_every_mx(mx, content, figure):
    token = uuid.uuid4().hex
    msg = post(token, **ATTACK_CONTENTS[content])
    refusal = first_refusal(attempt(fqdn(mx), [LIST], msg))
    figure(f"{content} to {mx}: {refusal}")
    assert_refused_as_attack(content, refusal)
    assert copies(token) == []


@pytest.mark.parametrize("mx", MXS)
def test_an_unknown_list_address_is_refused_during_the_session(mx, figure):
    rcpt = f"nosuchlist-{uuid.uuid4().hex[:8]}@lists.mailstack.test"
    step, code, text = refused(attempt(fqdn(mx), [rcpt], None))
    figure(f"RCPT {rcpt} at {mx}: {code} {text}")
    assert (step, code) == ("rcpt", 550)
    assert text.startswith(f"5.1.1 <{rcpt}>: Recipient address rejected")
    # The reply names no internal host.
    assert not any(HOSTVARS[h]["mailstack__address"] in text for h in group("mailman_core"))


def relay_attempt(host: str) -> dict:
    """Mail for another domain, from the internet to host's port 25."""
    return attempt(HOSTVARS[host]["mailstack__address"], ["victim@remote-b.test"], None, timeout=5)


def test_no_host_of_the_site_relays_for_the_internet(figure):
    """Every host's port 25, from the internet: no connection, or the relaying refused."""
    outcomes = {}
    with ThreadPoolExecutor(len(SITE)) as pool:  # a dropped connection waits out its timeout at once
        results = dict(zip(SITE, pool.map(relay_attempt, SITE), strict=True))
    for host, result in results.items():
        codes = {s[0]: s[1] for s in result["steps"]}
        if codes.get("connect") != 220:
            outcomes[host] = "no connection"
            continue
        step, code, _ = refused(result)
        outcomes[host] = f"{step} {code}"
        assert step in {"connect", "ehlo", "mail", "rcpt"} and 500 <= code < 600, (host, result)
        assert codes.get("rcpt") != 250, f"{host} accepted mail for another domain"
    figure("relaying for remote-b.test: " + ", ".join(f"{h} {o}" for h, o in outcomes.items()))
    assert {h for h, o in outcomes.items() if o != "no connection"} == set(MXS)
    assert all(outcomes[mx] == "rcpt 554" for mx in MXS)


def test_oversized_messages_are_refused_with_552(figure):
    mx = MXS[0]
    limit = int(lab_host(mx).check_output("postconf -h message_size_limit"))
    # Declared too big in MAIL FROM: refused before any data is sent.
    step, code, text = refused(attempt(fqdn(mx), [LIST], post("declared"), size=limit + 1))
    figure(f"MAIL FROM SIZE={limit + 1} at {mx}: {step} {code} {text}")
    assert (step, code) == ("mail", 552)
    assert text.startswith("5.3.4")
    # Undeclared, then sent: refused at the end of DATA, and nothing is delivered.
    token = uuid.uuid4().hex
    step, code, text = refused(attempt(fqdn(mx), [LIST], post(token), pad=limit + 100_000))
    figure(f"{(limit + 100_000) / 1e6:.1f} MB message at {mx}: {step} {code} {text}")
    assert (step, code) == ("data", 552)
    assert text.startswith("5.3.4")
    assert copies(token) == []


FLOOD_ADDRESS = "172.30.0.200"  # a second address of the internet host, for the flood only
FLOOD_CONNECTIONS = 80


@pytest.fixture
def flood_address():
    with extra_address(internet(), FLOOD_ADDRESS) as address:
        yield address


def test_a_flood_from_one_client_is_slowed_without_affecting_another(flood_address, figure):
    """One client opens connections as fast as it can: the MX's connection rate limit (anvil,
    smtpd_client_connection_rate_limit per minute) turns it away with 421. In the middle of the
    flood (the flooder already turned away, and still turned away right after), a post from
    another client is accepted and delivered."""
    mx = MXS[0]
    rate = int(lab_host(mx).check_output("postconf -h smtpd_client_connection_rate_limit"))
    before = min(rate + 5, FLOOD_CONNECTIONS - 5)
    first = flood(internet(), fqdn(mx), flood_address, before)
    token = uuid.uuid4().hex
    t0 = time.monotonic()
    posted = attempt(fqdn(mx), [LIST], post(token))
    took = time.monotonic() - t0
    second = flood(internet(), fqdn(mx), flood_address, FLOOD_CONNECTIONS - before)
    greeted, limited = first["greeted"] + second["greeted"], first["limited"] + second["limited"]
    seconds = second["ended"] - first["started"]
    figure(
        f"{FLOOD_CONNECTIONS} connections from {flood_address} to {mx} in {seconds:.1f} s: "
        f"{greeted} greeted, {limited} turned away with 421 (limit {rate} a minute): "
        f"{first['replies']} then {second['replies']}"
    )
    assert seconds < 60, "the flood took over a minute: the rate limit was not tested"
    assert greeted <= rate
    assert limited >= FLOOD_CONNECTIONS - rate
    # The post came while the flooder was turned away, before and after it.
    assert first["limited"] > 0 and second["limited"] == FLOOD_CONNECTIONS - before, (first, second)
    assert first_refusal(posted) is None, posted
    found = wait_copies(token, MEMBERS, timeout=180)
    delete(found)
    figure(
        f"a post from the internet host's own address after the flooder's {before}th connection: "
        f"accepted in {took:.1f} s, {len(found)}/{MEMBERS} copies delivered; the "
        f"{FLOOD_CONNECTIONS - before} connections after it all turned away"
    )
    assert len(found) == MEMBERS


def test_postscreen_answers_port_25_and_passed_the_internet_host(figure):
    internet_address = HOSTVARS[group("lab_internet")[0]]["mailstack__address"]
    seen = {}
    for mx in MXS:
        service = lab_host(mx).check_output("postconf -M smtp/inet").split()[-1]
        log = lab_host(mx).check_output("journalctl -t postfix/postscreen --no-pager -o cat")
        seen[mx] = (
            service,
            f"PASS NEW [{internet_address}]" in log or f"PASS OLD [{internet_address}]" in log,
        )
    figure(f"port 25 of {len(MXS)} MX nodes: {seen}")
    assert seen == dict.fromkeys(MXS, ("postscreen", True))


def test_starttls_is_offered_and_the_hop_is_encrypted(figure):
    token = uuid.uuid4().hex
    result = attempt(fqdn(MXS[0]), [LIST], post(token), starttls=True)
    assert result["starttls_offered"] is True
    assert ["starttls", 220, "2.0.0 Ready to start TLS"] in result["steps"]
    assert first_refusal(result) is None, result
    found = wait_copies(token, MEMBERS, timeout=180)
    try:
        hops = [
            next(
                r
                for r in c["received"]
                if r.startswith("from internet.lab.mailstack.test") and f"by {fqdn(MXS[0])}" in r
            )
            for c in headers(found)
        ]
    finally:
        delete(found)
    figure(
        f"STARTTLS at {MXS[0]}: offered, 220; {sum('with ESMTPS' in h for h in hops)}/{len(hops)} "
        "copies record the hop as ESMTPS"
    )
    assert len(hops) == MEMBERS and all("with ESMTPS" in h for h in hops), hops


def test_a_bare_newline_cannot_smuggle_a_second_message(figure):
    """A message whose body hides "\\n.\\n" then a second transaction: the MX answers each
    command once, and the hidden transaction stays text in the one message each member gets."""
    token = uuid.uuid4().hex
    smuggled = f"smuggled-{token}"
    data = (
        f"Subject: outer {token}\r\n\r\nhello\n.\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<{LIST}>\r\n"
        f"DATA\r\nSubject: {smuggled}\r\n\r\ninner\r\n.\r\n"
    )
    chunks = [
        f"EHLO {HELO}\r\n",
        f"MAIL FROM:<{SENDER}>\r\n",
        f"RCPT TO:<{LIST}>\r\n",
        "DATA\r\n",
        data,
        "QUIT\r\n",
    ]
    replies = run_python(internet(), RAW_CLIENT, {"server": fqdn(MXS[0]), "chunks": chunks})
    found = wait_copies(token, MEMBERS, timeout=180)
    try:
        subjects = sorted({c["subject"] for c in headers(found)})
    finally:
        delete(found)
    figure(
        f"smuggling attempt at {MXS[0]}: replies {[r[:3] for r in replies]}; {len(found)} copies, "
        f"subjects {subjects}"
    )
    # One reply per command: a smuggled MAIL/RCPT/DATA would add replies after the first 250.
    assert [r[:3] for r in replies] == ["220", "250", "250", "250", "354", "250", "221"], replies
    assert len(found) == MEMBERS and subjects == [f"[announce] outer {token}"], subjects


def test_an_address_the_mx_cannot_verify_while_the_backend_is_down_gets_a_4xx(figure):
    """The MX verifies a list address with the active back-end during the session: with its Postfix
    stopped, a new address gets 450 (the sender retries), never a 5xx (mail lost)."""
    backend = lab_host(active_backend())
    rcpt = f"announce+{uuid.uuid4().hex[:8]}@lists.mailstack.test"
    try:
        backend.check_output("systemctl stop postfix@-.service")
        result = attempt(fqdn(MXS[0]), [rcpt], post(uuid.uuid4().hex))
    finally:
        backend.check_output("systemctl start postfix@-.service")
    step, code, text = first_refusal(result)
    figure(f"{rcpt} at {MXS[0]} with the back-end's Postfix stopped: {step} {code} {text}")
    assert (step, code) == ("rcpt", 450), result
    assert text.startswith(f"4.1.1 <{rcpt}>: Recipient address rejected: unverified address")
