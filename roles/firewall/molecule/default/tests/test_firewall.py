"""Verify roles/firewall with real connections from two clients (one allowed, one not).

Runs after converge/idempotence/check. fw-server runs the role and a test listener (TCP ports
answer a banner, UDP ports echo); fw-allowed is in the sources of the rules, fw-denied is not.
Later tests run the role again with ansible-playbook (broken rule sets, check mode) and restart
the server's container (a reboot).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from support.molecule_playbook import ansible_playbook
from support.scenario import ansible_host, flat, recap

SCENARIO = Path(__file__).resolve().parents[1]
ROLE = SCENARIO.parents[1]
TOP = ROLE.parents[1]


SERVER = {"ipv4": "172.31.16.10", "ipv6": "fd00:31:16::10"}
TCP_PORTS = [22, 8080, 8081, 8082, 8083, 8090, 8091, 8099]
UDP_PORTS = [5353, 5354]
CONFIG = "/etc/nftables.conf"

PROBE = """
import socket, sys
host, port, proto = sys.argv[1], int(sys.argv[2]), sys.argv[3]
family = socket.AF_INET6 if ":" in host else socket.AF_INET
try:
    if proto == "tcp":
        with socket.create_connection((host, port), timeout=3) as s:
            print("open", s.recv(100).decode().strip())
    else:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.settimeout(3)
            s.sendto(b"ping", (host, port))
            print("open", s.recv(100).decode().strip())
except TimeoutError:
    print("timeout")
except OSError as exc:
    print("closed", type(exc).__name__)
"""

# One ICMP/ICMPv6 echo request (raw socket), answer "reply" or "timeout".
PING = """
import socket, struct, sys, time
host = sys.argv[1]
v6 = ":" in host
sock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_RAW,
                     socket.IPPROTO_ICMPV6 if v6 else socket.IPPROTO_ICMP)
request, reply = (128, 129) if v6 else (8, 0)
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF
body = struct.pack("!BBHHH", request, 0, 0, 0x4D53, 1) + b"mailstack-ping"
if not v6:  # the kernel computes ICMPv6 checksums itself
    body = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
sock.sendto(body, (host, 0))
deadline = time.monotonic() + 3
while (left := deadline - time.monotonic()) > 0:
    sock.settimeout(left)
    try:
        data, peer = sock.recvfrom(1500)
    except TimeoutError:
        break
    icmp = data if v6 else data[(data[0] & 0x0F) * 4:]
    if icmp[0] == reply and icmp[4:6] == b"MS":
        print("reply")
        sys.exit(0)
print("timeout")
"""




@pytest.fixture(scope="module")
def server():
    host = ansible_host("fw-server")
    listener = (SCENARIO / "tests" / "listener.py").read_text()
    host.run(f"cat > /usr/local/bin/fw-listener <<'EOF'\n{listener}\nEOF")
    _start_listener(host)
    return host


def _start_listener(host) -> None:
    host.run("systemctl stop fw-listener 2>/dev/null; systemctl reset-failed fw-listener 2>/dev/null")
    cmd = host.run(
        "systemd-run --unit fw-listener python3 /usr/local/bin/fw-listener %s %s",
        ",".join(map(str, TCP_PORTS)),
        ",".join(map(str, UDP_PORTS)),
    )
    assert cmd.rc == 0, cmd.stderr
    for _ in range(50):
        if host.run("ss -Hltn 'sport = :8099'").stdout.strip():
            return
        time.sleep(0.2)
    pytest.fail("the test listener did not start: " + host.run("journalctl -u fw-listener").stdout)


@pytest.fixture(scope="module")
def allowed():
    return ansible_host("fw-allowed")


@pytest.fixture(scope="module")
def denied():
    return ansible_host("fw-denied")


def _probe(client, family: str, port: int, proto: str = "tcp") -> str:
    cmd = client.run("python3 -c %s %s %s %s", PROBE, SERVER[family], str(port), proto)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def _nft(host, *args: str) -> str:
    cmd = host.run("nft " + " ".join(["%s"] * len(args)), *args)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout


def _refused_packets(host) -> int:
    data = json.loads(_nft(host, "-j", "list", "counter", "inet", "mailstack", "refused"))
    return next(item["counter"]["packets"] for item in data["nftables"] if "counter" in item)


def _live_table(host) -> str:
    """The role's table without counter values (stateless listing)."""
    return _nft(host, "-s", "list", "table", "inet", "mailstack")


def _playbook(
    *args: str, extra: dict | None = None, playbook: str = "converge.yml"
) -> subprocess.CompletedProcess[str]:
    return ansible_playbook(SCENARIO / playbook, *args, extra=extra, timeout=600)



# ---------------------------------------------------------------------------------------------
# The installed ruleset


def test_service_enabled_and_table_loaded(server):
    assert server.service("nftables").is_enabled
    assert server.service("nftables").is_running
    assert "chain input" in _live_table(server)
    config = server.file(CONFIG)
    assert config.user == "root" and config.mode == 0o755
    assert "Ansible managed" in config.content_string


def test_ssh_rule_is_evaluated_first(server):
    chain = _nft(server, "-s", "list", "chain", "inet", "mailstack", "input")
    rules = [line.strip() for line in chain.splitlines()]
    body = rules[rules.index("type filter hook input priority filter; policy drop;") + 1 :]
    assert body[0].startswith("ip saddr 172.31.16.11 tcp dport 22 "), body
    assert body[1].startswith("ip6 saddr fd00:31:16::11 tcp dport 22 "), body
    assert body[2] == 'iif "lo" accept'


def test_removed_rule_is_absent_and_comment_overridden(server):
    table = _live_table(server)
    assert "8082" not in table
    assert 'comment "open to every client"' in table


def test_docker_table_of_the_container_is_untouched(server):
    # Docker's embedded DNS installs `table ip nat` in every container: the role must keep it.
    assert "DOCKER_OUTPUT" in _nft(server, "list", "ruleset")


# ---------------------------------------------------------------------------------------------
# Real connections

# (port, proto, families, allowed client admitted, denied client admitted)
CASES = [
    (22, "tcp", ("ipv4", "ipv6"), True, False),  # SSH from firewall__admin_networks
    (8080, "tcp", ("ipv4", "ipv6"), True, False),  # rule web
    (8091, "tcp", ("ipv4", "ipv6"), True, False),  # rule web, end of the range 8090-8091
    (8081, "tcp", ("ipv4", "ipv6"), True, True),  # rule public: sources any, from anywhere
    (8083, "tcp", ("ipv4",), True, True),  # rule v4-only: 172.31.16.0/24
    (8083, "tcp", ("ipv6",), False, False),  # ... and no IPv6 source
    (8082, "tcp", ("ipv4", "ipv6"), False, False),  # rule legacy, removed by the host layer
    (8099, "tcp", ("ipv4", "ipv6"), False, False),  # no rule
    (5353, "udp", ("ipv4", "ipv6"), True, False),  # rule echo-udp
    (5354, "udp", ("ipv4", "ipv6"), False, False),  # no rule
]


@pytest.mark.parametrize("case", CASES, ids=[f"{c[1]}-{c[0]}-{'+'.join(c[2])}" for c in CASES])
def test_connections(server, allowed, denied, case):
    port, proto, families, ok_allowed, ok_denied = case
    for family in families:
        for client, expect in ((allowed, ok_allowed), (denied, ok_denied)):
            got = _probe(client, family, port, proto)
            name = client.backend.host
            if expect:
                assert got.startswith("open"), f"{name} -> {family} {proto}/{port}: {got}"
            else:
                # Dropped, not rejected: the client sees no answer at all.
                assert got == "timeout", f"{name} -> {family} {proto}/{port}: {got}"


@pytest.mark.parametrize("family", ["ipv4", "ipv6"])
def test_echo_request_answered_for_every_client(server, allowed, denied, family):
    for client in (allowed, denied):
        cmd = client.run("python3 -c %s %s", PING, SERVER[family])
        assert cmd.stdout.strip() == "reply", (client.backend.host, family, cmd.stdout, cmd.stderr)


def test_ipv6_neighbour_discovery_passes(server, allowed):
    # With empty neighbour caches both sides must resolve each other through ICMPv6 ND, which
    # the default-drop chain has to admit.
    for host in (server, allowed):
        assert host.run("ip -6 neigh flush all").rc == 0
    assert _probe(allowed, "ipv6", 8080).startswith("open")
    assert "fd00:31:16::11" in server.run("ip -6 neigh show").stdout


def test_refused_attempt_increases_the_drop_counter(server, denied):
    before = _refused_packets(server)
    assert _probe(denied, "ipv4", 8080) == "timeout"
    after = _refused_packets(server)
    assert after > before, (before, after)


# ---------------------------------------------------------------------------------------------
# Runs of the role that must change nothing


BROKEN = {
    "unknown-set": ["ip saddr @nosuch accept"],
    "bad-syntax": ["tcp dport { 8099 accept"],
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_ruleset_fails_at_nft_check_and_live_rules_stay(server, allowed, case):
    table, config = _live_table(server), server.file(CONFIG).sha256sum
    run = _playbook(extra={"firewall__raw_rules": BROKEN[case]})
    assert run.returncode != 0, run.stdout[-3000:]
    assert "failed to validate" in run.stdout, run.stdout[-3000:]
    assert "Error:" in run.stdout, run.stdout[-3000:]
    assert _live_table(server) == table
    assert server.file(CONFIG).sha256sum == config
    assert _probe(allowed, "ipv4", 8080).startswith("open")


HEAD = "firewall_merge_rules: firewall__host_rules: rule 'smtp': "
BAD_DATA = {
    "bad-port": (
        [{"name": "smtp", "ports": 70000, "sources": "any"}],
        HEAD + "ports: 70000 is out of range 1-65535",
    ),
    "bad-address": (
        [{"name": "smtp", "ports": 25, "sources": ["mx.example.test"]}],
        HEAD + "sources: 'mx.example.test' is not an IPv4/IPv6 address or network",
    ),
    "host-bits": (
        [{"name": "smtp", "ports": 25, "sources": ["172.31.16.11/24"]}],
        HEAD + "sources: '172.31.16.11/24' has host bits set (did you mean '172.31.16.0/24'?)",
    ),
    "no-sources": (
        [{"name": "smtp", "ports": 25}],
        HEAD + "sources is required: a list of addresses or networks (empty: nobody), or 'any'",
    ),
    "duplicate": (
        [{"name": "smtp", "ports": 25, "sources": "any"}, {"name": "smtp", "ports": 587, "sources": "any"}],
        "firewall_merge_rules: firewall__host_rules: item 1: names the same entry as firewall__host_rules[0]",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_bad_rule_data_fails_before_any_change(server, case):
    rules, message = BAD_DATA[case]
    table, config = _live_table(server), server.file(CONFIG).sha256sum
    run = _playbook(extra={"firewall__host_rules": rules})
    assert run.returncode != 0, run.stdout[-3000:]
    assert message in flat(run.stdout), run.stdout[-3000:]
    assert recap(run.stdout, "fw-server")["changed"] == 0
    assert _live_table(server) == table
    assert server.file(CONFIG).sha256sum == config


def test_check_diff_shows_a_new_rule_and_changes_nothing(server):
    table = _live_table(server)
    imap = "{'name': 'imap', 'ports': 143, 'sources': 'any'}"
    extra = {"firewall__dependent_rules": "{{ molecule_firewall_rules + [" + imap + "] }}"}
    run = _playbook("--check", "--diff", extra=extra)
    assert run.returncode == 0, run.stdout[-3000:]
    new_line = r'^\+\s+tcp dport 143 counter accept comment "imap"$'
    assert re.search(new_line, run.stdout, re.M), run.stdout[-3000:]
    assert recap(run.stdout, "fw-server")["changed"] >= 1
    assert _live_table(server) == table


def test_check_mode_on_a_fresh_host_reports_changes_without_failing():
    fresh = ansible_host("fw-denied")
    run = _playbook("--check", "--diff", playbook="fresh.yml")
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run.stdout, "fw-denied")["changed"] >= 1
    assert re.search(r"^\+\s+ct state established,related accept$", run.stdout, re.M), run.stdout[-3000:]
    assert not fresh.file(CONFIG).exists or "mailstack" not in fresh.file(CONFIG).content_string
    assert fresh.run("command -v nft").rc != 0


def test_unchanged_data_reports_no_change(server):
    run = _playbook()
    assert run.returncode == 0, run.stdout[-3000:]
    assert recap(run.stdout, "fw-server")["changed"] == 0, run.stdout[-3000:]


# ---------------------------------------------------------------------------------------------
# Service stop and reboot (last: they restart the firewall and the container)


def test_stopping_the_service_removes_only_the_role_table(server, denied):
    assert server.run("systemctl stop nftables").rc == 0
    try:
        assert server.run("nft list table inet mailstack").rc != 0
        assert "DOCKER_OUTPUT" in _nft(server, "list", "ruleset")
        assert _probe(denied, "ipv4", 8099).startswith("open")
    finally:
        assert server.run("systemctl start nftables").rc == 0
    assert _probe(denied, "ipv4", 8099) == "timeout"


def test_ruleset_survives_a_reboot(server, allowed, denied):
    table = _live_table(server)
    docker = shutil.which("docker")
    assert docker, "the reboot test needs the docker CLI"
    subprocess.run([docker, "restart", "fw-server"], check=True, capture_output=True, timeout=120)
    for _ in range(60):
        state = server.run("timeout 60 systemctl is-system-running --wait").stdout.strip()
        if state in ("running", "degraded"):
            break
        time.sleep(1)
    assert _live_table(server) == table
    _start_listener(server)
    assert _probe(allowed, "ipv4", 8080).startswith("open")
    assert _probe(denied, "ipv4", 8080) == "timeout"
