"""The inbound scanning path over real SMTP: client -> MX (postscreen, smtpd, rspamd, clamd) -> back-end.

Every message is sent by a small Python SMTP client that runs on the sending container
(mx-client, or mx-mx itself for "the MX's own network"); it reports every SMTP reply it got.
"""

import shlex
import time
import uuid

import pytest
from support.smtpclient import RAW_CLIENT, first_refusal, peer, run_python
from support.smtpclient import message as make_message
from support.smtpclient import send as smtp_send

testinfra_hosts = ["ansible://mx-client"]

MX = "172.31.13.10"
LIST = "list1@lists.mx.test"
SENDER = "sender@client.mx.test"


@pytest.fixture(scope="module")
def mx(host):
    return peer(host, "mx-mx")


@pytest.fixture(scope="module")
def backend(host):
    return peer(host, "mx-backend")


def message(token: str, body: str = "A clean message.\n", attachment: bytes | None = None) -> bytes:
    subject, message_id = f"mx test {token}", f"<{token}@client.mx.test>"
    return make_message(SENDER, LIST, subject, message_id, body=body, attachment=attachment)


def send(sender, rcpts, msg: bytes, server: str = MX, starttls: bool = False) -> dict:
    return smtp_send(sender, server, SENDER, rcpts, msg, helo="client.mx.test", starttls=starttls)


def stored(backend, token: str, wait: int = 30) -> list[str]:
    """Files of the back-end's Maildir that contain token, waiting up to `wait` seconds."""
    for attempt in range(wait + 1):
        found = backend.run(f"grep -l -r -F {shlex.quote(token)} /var/mail/stored/new").stdout.split()
        if found or attempt == wait:
            return found
        time.sleep(1)
    return []


def accepted_and_stored(host, backend, rcpt: str = LIST) -> str:
    token = uuid.uuid4().hex
    result = send(host, [rcpt], message(token))
    assert first_refusal(result) is None, result
    assert result["steps"][-1][1] == 250
    found = stored(backend, token)
    assert len(found) == 1, f"{token} not stored exactly once at the back-end: {found}"
    return backend.check_output(f"cat {found[0]}")


@pytest.mark.parametrize("rcpt", [LIST, "list1+digest@lists.mx.test", "list1-request@lists.mx.test"])
def test_clean_message_to_a_list_address_arrives_at_the_backend(host, backend, rcpt):
    text = accepted_and_stored(host, backend, rcpt)
    assert f"Delivered-To: {rcpt}" in text
    # Client -> MX -> back-end: both hops are in the trace, the MX's with the client's address.
    assert "by mx-mx (Postfix)" in text
    assert "[172.31.13.30])\n\tby mx-mx" in text
    assert "from mx-mx" in text and "by mx-backend (Postfix)" in text


def test_postscreen_answers_port_25_and_passed_the_client(mx):
    assert mx.check_output("postconf -M smtp/inet").split()[-1] == "postscreen"
    log = mx.check_output("journalctl -t postfix/postscreen --no-pager")
    assert "PASS NEW [172.31.13.30]" in log


def test_starttls_is_offered_and_works(host, backend):
    token = uuid.uuid4().hex
    result = send(host, [LIST], message(token), starttls=True)
    assert result["starttls_offered"] is True
    assert ["starttls", 220, "2.0.0 Ready to start TLS"] in result["steps"]
    assert first_refusal(result) is None, result
    assert "with ESMTPS" in backend.check_output(f"cat {stored(backend, token)[0]}")


@pytest.mark.parametrize("source", ["mx-client", "mx-mx"])
def test_no_relaying_to_other_domains(host, source):
    # From the client, and from the MX itself to its own (non-loopback) address: both outside.
    sender = host if source == "mx-client" else peer(host, source)
    result = send(sender, ["someone@example.test"], message(uuid.uuid4().hex))
    step, code, text = first_refusal(result)
    assert (step, code) == ("rcpt", 554), result
    assert text == "5.7.1 <someone@example.test>: Relay access denied"
    assert not any(s[0] == "data" for s in result["steps"])


def test_bare_newline_cannot_smuggle_a_second_message(host, backend):
    token = uuid.uuid4().hex
    smuggled = f"smuggled-{token}"
    data = (
        f"Subject: outer {token}\r\n\r\nhello\n.\nMAIL FROM:<{SENDER}>\r\nRCPT TO:<{LIST}>\r\n"
        f"DATA\r\nSubject: {smuggled}\r\n\r\ninner\r\n.\r\n"
    )
    chunks = [
        "EHLO client.mx.test\r\n",
        f"MAIL FROM:<{SENDER}>\r\n",
        f"RCPT TO:<{LIST}>\r\n",
        "DATA\r\n",
        data,
        "QUIT\r\n",
    ]
    replies = run_python(host, RAW_CLIENT, {"server": MX, "chunks": chunks})
    # One reply per command: a smuggled MAIL/RCPT/DATA would add replies after the first 250.
    assert [r[:3] for r in replies] == ["220", "250", "250", "250", "354", "250", "221"], replies
    found = stored(backend, token)
    assert len(found) == 1
    assert f"Subject: {smuggled}" in backend.check_output(f"cat {found[0]}")


def wait_for_port(mx, port: int, seconds: int = 60) -> None:
    for _ in range(seconds):
        if mx.run(f"ss -Hltn 'sport = :{port}'").stdout.strip():
            return
        time.sleep(1)
    raise AssertionError(f"nothing listens on port {port} of mx-mx after {seconds}s")


def test_rspamd_down_defers_and_accepts_once_back(host, mx, backend):
    token = uuid.uuid4().hex
    try:
        mx.run_test("systemctl stop rspamd.service")
        result = send(host, [LIST], message(token))
        refusal = first_refusal(result)
        assert refusal is not None and 400 <= refusal[1] < 500, result
        assert refusal[2].startswith("4.7.1")
        assert all(s[1] < 500 for s in result["steps"]), result
    finally:
        mx.run("systemctl start rspamd.service")
        wait_for_port(mx, 11332)
    assert stored(backend, token, wait=0) == []
    accepted_and_stored(host, backend)


def test_backend_down_gives_4xx_for_an_unverified_address(host, backend):
    rcpt = f"list1+{uuid.uuid4().hex[:8]}@lists.mx.test"
    try:
        backend.run_test("systemctl stop postfix@-.service")
        result = send(host, [rcpt], message(uuid.uuid4().hex))
        step, code, text = first_refusal(result)
        assert (step, code) == ("rcpt", 450), result
        assert text.startswith(f"4.1.1 <{rcpt}>: Recipient address rejected: unverified address")
    finally:
        backend.run("systemctl start postfix@-.service")
    # Back up: mail flows again. (The address probed during the outage keeps its cached
    # temporary failure, 450, until address_verify_negative_refresh_time re-probes it.)
    for _ in range(30):
        if backend.run("ss -Hltn 'sport = :25'").stdout.strip():
            break
        time.sleep(1)
    accepted_and_stored(host, backend, f"list1+{uuid.uuid4().hex[:8]}@lists.mx.test")
