"""Mailman's runners on a back-end, as its own configuration and its master see them (roles/mailman_core's
scenario and the e2e suite; `host` is a testinfra host or the e2e suite's lab host).

Mailman's master does not restart a runner that crashed: these helpers let a test say which runner
is missing, judged by Mailman's own configuration (`mailman conf`), not by what the role wrote.
"""

from __future__ import annotations

import re
import time

CONF = "runuser -u list -- mailman -C /etc/mailman3/mailman.cfg conf -k {key}"
LINE = re.compile(r"^\[runner\.(\w+)\] (start|instances): (\S+)$")
ARG = re.compile(r"--runner=(\w+:\d+:\d+)")


def configured(host) -> set[str]:
    """`name:slice:count` of every runner Mailman's configuration starts."""
    values: dict[str, dict[str, str]] = {}
    for key in ("start", "instances"):
        for line in host.check_output(CONF.format(key=key)).splitlines():
            match = LINE.match(line.strip())
            if match:
                values.setdefault(match[1], {})[match[2]] = match[3]
    assert values, "mailman conf named no runner"
    return {f"{name}:{index}:{v['instances']}" for name, v in values.items() if v["start"] == "yes"
            for index in range(int(v["instances"]))}


def written(host, path: str = "/etc/mailman3/mailstack-runners") -> set[str]:
    """`name:slice:count` of the runners the role wrote for its check (or of the copy at `path` the
    running master was started with, /run/mailman3/mailstack-runners)."""
    lines = host.check_output(f"cat {path}").splitlines()
    counts = [line.split() for line in lines if line.strip() and not line.startswith("#")]
    return {f"{name}:{index}:{count}" for name, count in counts for index in range(int(count))}


def master(host) -> int:
    """The pid of Mailman's master (0 when mailman3 is not running)."""
    return int(host.check_output("systemctl show --property=MainPID --value mailman3") or 0)


def runner_pids(host, pid: int | None = None) -> dict[str, int]:
    """{`name:slice:count`: pid} of the master's children (gunicorn's workers are the rest runner's)."""
    pid = master(host) if pid is None else pid
    if not pid:
        return {}
    out = host.run(f"ps -o pid=,args= --ppid {pid}").stdout
    return {m[1]: int(line.split()[0]) for line in out.splitlines() if (m := ARG.search(line))}


def running(host, pid: int | None = None) -> set[str]:
    """`name:slice:count` of the master's children."""
    return set(runner_pids(host, pid))


def wait_all_running(host, expected: set[str], timeout: float) -> tuple[int, set[str]]:
    """Wait until the master runs every expected runner: (master pid, runners missing at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        pid = master(host)
        missing = expected - running(host, pid)
        if not missing or time.monotonic() > deadline:
            return pid, missing
        time.sleep(2)
