"""The host firewall of a running lab, seen from outside (`make lab-test`).

Every TCP port any lab host listens on (read with `ss` inside the host), probed from the lab's
`internet` host: only port 25 of the MX nodes and 80/443 of the proxy may answer. Then the whole
matrix between the site's hosts: every listening port of every host, probed from every other host,
answers exactly when the host's ingress rules (its /etc/nftables.conf) admit that source; and a few
pairs that say the design's intent (a tier reaches the ports it needs, a host of another tier not).
And a service that does not trust the firewall alone: PostgreSQL, with its host's nftables stopped.
"""

import ipaddress
import json
import re

import pytest
from support import smtpclient
from test_lab import HOSTVARS, group, lab_host


def probe(source: str, targets: list[str]) -> dict[str, str]:
    """Connect from lab host `source` to each "address:port"; open, refused or dropped."""
    return smtpclient.probe(lab_host(source), targets)


def public_listeners(name: str) -> list[int]:
    """TCP ports `name` listens on beyond loopback."""
    return smtpclient.public_listeners(lab_host(name))


def address(name: str) -> str:
    return HOSTVARS[name]["mailstack__address"]


# The lab's own support hosts (its DNS, its internet) are not part of the site under test.
TIER_HOSTS = [h for h in sorted(HOSTVARS) if h not in group("lab_dns") + group("lab_internet")]


def test_from_the_internet_only_the_mx_smtp_and_the_proxy_answer(figure):
    allowed = {(h, 25) for h in group("mx")} | {(h, p) for h in group("proxy") for p in (80, 443)}
    # The services that listen on internal addresses: Mailman's REST API, PostgreSQL, NFS, uwsgi and
    # memcached, probed even if one is restarting now (the firewall drops them either way).
    backend, db, store, web = (group(g)[0] for g in ("mailman_core", "db", "nfs_server", "mailman_web"))
    inner = {(backend, 8001), (db, 5432), (store, 2049), (web, 8000), (web, 11211)}
    targets = {}
    for name in TIER_HOSTS:
        ports = set(public_listeners(name)) | {p for h, p in allowed | inner if h == name}
        for port in sorted(ports):
            targets[f"{address(name)}:{port}"] = (name, port)
    seen = probe(group("lab_internet")[0], list(targets))
    opened = sorted(targets[t] for t, state in seen.items() if state == "open")
    # Only what is allowed and actually listening answers.
    assert set(opened) <= allowed, f"reachable from the internet: {set(opened) - allowed}"
    assert {(h, 25) for h in group("mx")} <= set(opened)
    assert {(h, p) for h in group("proxy") for p in (80, 443)} <= set(opened)
    closed = {t: s for t, s in seen.items() if targets[t] not in allowed}
    assert all(s == "dropped" for s in closed.values()), closed  # the firewall drops, it never refuses
    inner_seen = {(h, p): seen[f"{address(h)}:{p}"] for h, p in inner}
    assert set(inner_seen.values()) == {"dropped"}, inner_seen
    unused = len(seen) - len(opened) - len(closed)  # allowed, but nothing listens (yet)
    figure(
        f"{len(seen)} ports on {len(TIER_HOSTS)} hosts probed from the internet: "
        f"{len(opened)} open ({', '.join(f'{h}:{p}' for h, p in opened)}), {len(closed)} listening "
        f"ports closed by the firewall, {unused} allowed with nothing listening"
    )


# An accept rule of the rendered ruleset: "ip saddr { a, b } tcp dport N counter accept" (no saddr:
# any source).
RULE = re.compile(r"^\s*(?:ip saddr (\{[^}]*\}|\S+) )?tcp dport (\d+) counter accept", re.M)


def ingress_rules(name: str) -> list[tuple[list | None, int]]:
    """(source networks or None for any, port) of each TCP accept rule in the host's ruleset file:
    what the firewall role rendered from the topology, read from the file, not from the kernel."""
    text = lab_host(name).file("/etc/nftables.conf").content_string
    return [
        (
            None
            if m[1] is None
            else [ipaddress.ip_network(a.strip(), strict=False) for a in m[1].strip("{} ").split(",")],
            int(m[2]),
        )
        for m in RULE.finditer(text)
    ]


def test_every_host_reaches_exactly_the_listening_ports_its_rules_admit(figure):
    listening = {name: public_listeners(name) for name in TIER_HOSTS}
    rules = {name: ingress_rules(name) for name in TIER_HOSTS}
    wrong, opened, closed = [], 0, 0
    for source in TIER_HOSTS:
        src = ipaddress.ip_address(address(source))
        targets = {f"{address(t)}:{p}": (t, p) for t in TIER_HOSTS if t != source for p in listening[t]}
        for target, state in probe(source, list(targets)).items():
            name, port = targets[target]
            admitted = any(
                p == port and (nets is None or any(src in n for n in nets)) for nets, p in rules[name]
            )
            opened, closed = opened + (state == "open"), closed + (state != "open")
            # The firewall drops what its rules refuse; a packet it admits reaches the host, which
            # answers (open) or refuses it (a service restarting since its port was listed).
            passed = state in ("open", "refused")
            if passed != admitted or state not in ("open", "refused", "dropped"):
                wrong.append(f"{source} -> {name}:{port} {state}, rules {'admit' if admitted else 'refuse'}")
    figure(
        f"{opened + closed} (source, host, listening port) pairs of {len(TIER_HOSTS)} hosts: {opened} "
        f"open, {closed} closed, {len(wrong)} unlike the rules"
    )
    assert not wrong, wrong[:20]


@pytest.mark.parametrize(
    ("source_group", "target_group", "port", "expected"),
    [
        ("mailman_web", "mailman_core", 8001, "open"),  # Postorius -> REST
        ("mx", "mailman_core", 8001, "dropped"),
        ("mailman_web", "db", 5432, "open"),
        ("relays", "db", 5432, "dropped"),
        ("mx", "mailman_core", 25, "open"),  # inbound list mail
        ("relays", "mailman_core", 25, "dropped"),
        ("mailman_core", "relays", 25, "open"),  # postfix-out -> relays
        ("mx", "relays", 25, "dropped"),
    ],
)
def test_each_tier_reaches_the_ports_it_needs_and_no_other(
    source_group, target_group, port, expected, figure
):
    source = group(source_group)[0]
    target = group(target_group)[0]
    got = probe(source, [f"{address(target)}:{port}"])
    figure(f"{source} -> {target}:{port}: {got[f'{address(target)}:{port}']}")
    assert got == {f"{address(target)}:{port}": expected}


def test_refused_packets_are_counted(figure):
    backend = group("mailman_core")[0]

    def refused() -> int:
        out = json.loads(lab_host(backend).check_output("nft --json list counter inet mailstack refused"))
        return next(item["counter"]["packets"] for item in out["nftables"] if "counter" in item)

    before = refused()
    probe(group("lab_internet")[0], [f"{address(backend)}:5432"] * 3)
    after = refused()
    figure(f"{backend}'s refused counter: {before} -> {after} packets after 3 probes of port 5432")
    assert after >= before + 3


# A PostgreSQL client in a few lines for a host without one: StartupMessage, in the clear or after
# SSLRequest, then the server's first reply ("R": it asks for a password; "E": its error text).
PG_PROBE = r"""
import socket, ssl, struct, sys
host, tls = sys.argv[1], sys.argv[2] == "tls"
sock = socket.create_connection((host, 5432), timeout=10)
if tls:
    sock.sendall(struct.pack("!ii", 8, 80877103))
    assert sock.recv(1) == b"S", "no TLS offered"
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    sock = context.wrap_socket(sock)
body = struct.pack("!i", 196608) + b"user\0mailman\0database\0mailman\0\0"
sock.sendall(struct.pack("!i", len(body) + 4) + body)
reply = sock.recv(4096)
fields = reply[5:].split(b"\0")
print(reply[:1].decode(), next((f[1:].decode() for f in fields if f[:1] == b"M"), ""))
"""


def test_with_its_firewall_stopped_postgresql_still_refuses_the_internet(figure):
    """pg_hba admits the database's clients by address (hostssl, scram-sha-256) whatever the host
    firewall does: with the DB host's nftables stopped, the internet host reaches port 5432 and is
    refused, in the clear and over TLS, before any password is asked for."""
    db, internet = group("db")[0], lab_host(group("lab_internet")[0])
    address_db = address(db)
    lab_host(db).check_output("systemctl stop nftables")
    try:
        assert "table inet mailstack" not in lab_host(db).check_output("nft list tables")
        replies = {
            mode: internet.check_output("python3 -c %s %s %s", PG_PROBE, address_db, mode)
            for mode in ("clear", "tls")
        }
    finally:
        lab_host(db).check_output("systemctl start nftables")
    assert "table inet mailstack" in lab_host(db).check_output("nft list tables")
    internet_address = address(group("lab_internet")[0])
    for mode, reply in replies.items():
        code, _, message = reply.partition(" ")
        assert code == "E" and f'no pg_hba.conf entry for host "{internet_address}"' in message, (mode, reply)
    figure(
        f"{db}'s nftables stopped: 2 of 2 connections from the internet host to {address_db}:5432 "
        f"refused by pg_hba ({replies['clear']!r}; {replies['tls']!r})"
    )
