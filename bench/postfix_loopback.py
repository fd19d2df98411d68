#!/usr/bin/env python3
"""Measure the acceptance rate of a loopback relay instance: Debian defaults vs the role's profile.

One throwaway container (mailstack/base:bookworm with systemd, so Postfix logs to journald as on
a real host) runs Postfix on 127.0.0.1:10025, relaying everything to an smtp-sink on
127.0.0.1:2525.  Two configurations take turns, several rounds each, in the same run:

  stock   Debian's defaults plus only what a loopback relay needs (listener, mynetworks,
          relayhost, no local delivery)
  tuned   the same plus every parameter of the role's loopback_unchecked profile, read from
          roles/postfix/defaults/main/profile_loopback_unchecked.yml

smtp-source sends the messages (4 KiB, 5 recipients each); the rate is messages / wall-clock
seconds of smtp-source.  Absolute figures depend on the machine's load: compare the two rows of
one run.  Usage: bench/postfix_loopback.py [--messages N] [--sessions S] [--rounds R] [--keep]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import yaml
from filters import load_filters  # bench/filters.py: the project's own Postfix filters

TOP = Path(__file__).resolve().parents[1]
PROFILE = TOP / "roles" / "postfix" / "defaults" / "main" / "profile_loopback_unchecked.yml"
CONTAINER = "postfix-bench"
IMAGE = "mailstack/base:bookworm"

# Needed by both variants: listen on 127.0.0.1:10025 only, trust loopback, relay to the sink.
COMMON_PARAMS = {
    "inet_interfaces": "127.0.0.1",
    "inet_protocols": "ipv4",
    "mynetworks": "127.0.0.0/8",
    "mydestination": "",
    "local_recipient_maps": "",
    "relayhost": "[127.0.0.1]:2525",
    "myhostname": "bench.example.test",
    "compatibility_level": "3.6",
    "alias_maps": "",
    "smtpd_tls_security_level": "none",
}


def sh(*cmd: str, check: bool = True) -> str:
    return subprocess.run(cmd, check=check, capture_output=True, text=True).stdout


def inside(script: str, check: bool = True) -> str:
    return sh("docker", "exec", CONTAINER, "bash", "-c", script, check=check)


def main_cf(*layers: list[dict]) -> str:
    """main.cf from parameter layers, rendered by the role's own filters (later layers win)."""
    pf = load_filters()
    return pf.postfix_main_cf(pf.postfix_merge_params(list(layers), "-"), "-")


COMMON = [{"name": name, "value": value} for name, value in COMMON_PARAMS.items()]


def tuned_main_cf() -> str:
    profile = yaml.safe_load(PROFILE.read_text())["postfix__profile_loopback_unchecked"]["maincf"]
    # The profile wins over COMMON; its maillog_file names $syslog_name, 'postfix' here.
    return main_cf(COMMON, profile, [{"name": "maillog_file", "value": "/var/log/postfix-bench.log"}])


def configure(main_cf_text: str) -> None:
    inside(
        f"cat > /etc/postfix/main.cf <<'EOF'\n{main_cf_text}EOF\n"
        "sed -i 's/^smtp      inet/10025     inet/' /etc/postfix/master.cf && "
        "postfix check && systemctl restart postfix@-"
    )
    for _ in range(50):
        if ":2729 " in inside("cat /proc/net/tcp"):  # 10025 listening
            return
        time.sleep(0.2)
    raise SystemExit("postfix did not start listening on 127.0.0.1:10025")


def drain() -> None:
    for _ in range(120):
        if inside("postqueue -j | head -c1") == "":
            return
        time.sleep(0.5)
    raise SystemExit("the queue did not drain into the sink")


def one_run(messages: int, sessions: int) -> float:
    start = time.monotonic()
    inside(
        f"smtp-source -c -s {sessions} -m {messages} -l 4096 -r 5 -f list@lists.example.test "
        f"-t member@example.test 127.0.0.1:10025 >/dev/null"
    )
    rate = messages / (time.monotonic() - start)
    drain()
    return rate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="keep the container afterwards")
    args = parser.parse_args()

    sh("docker", "rm", "-f", CONTAINER, check=False)
    sh(
        "docker", "run", "-d", "--name", CONTAINER, "--hostname", CONTAINER,
        "--cap-add", "SYS_ADMIN", "--security-opt", "seccomp=unconfined", "--cgroupns", "host",
        "-v", "/sys/fs/cgroup:/sys/fs/cgroup:rw", "--tmpfs", "/run", "--tmpfs", "/run/lock",
        IMAGE, "/lib/systemd/systemd",
    )  # fmt: skip
    try:
        time.sleep(2)
        inside(
            "echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections && "
            "apt-get update -qq && "
            "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null && "
            "systemd-run --unit smtp-sink /usr/sbin/smtp-sink -u nobody 127.0.0.1:2525 1000 && sleep 1"
        )
        variants = {"stock": main_cf(COMMON), "tuned": tuned_main_cf()}
        rates: dict[str, list[float]] = {name: [] for name in variants}
        for round_no in range(1, args.rounds + 1):
            for name, text in variants.items():
                configure(text)
                one_run(min(200, args.messages), args.sessions)  # warm-up
                rate = one_run(args.messages, args.sessions)
                rates[name].append(rate)
                print(f"round {round_no} {name:6} {rate:7.1f} msg/s", file=sys.stderr)
        load = inside("cat /proc/loadavg").split()[0]
        print(
            f"\n{args.messages} messages x {args.rounds} rounds, {args.sessions} sessions, 4 KiB, 5 rcpts; "
            f"load average at the end: {load}"
        )
        print(f"{'config':8} {'median msg/s':>13} {'min':>8} {'max':>8}")
        for name, values in rates.items():
            print(f"{name:8} {statistics.median(values):13.1f} {min(values):8.1f} {max(values):8.1f}")
        base = statistics.median(rates["stock"])
        print(f"tuned / stock: {statistics.median(rates['tuned']) / base:.2f}")
    finally:
        if not args.keep:
            sh("docker", "rm", "-f", CONTAINER, check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
