#!/usr/bin/python3
"""Restart Mailman when one of its runners has died (role mailman_core; run by mailman3-runners.timer).

Mailman's master restarts a runner only when the runner exits on SIGUSR1: a runner that crashes (a
database outage during its periodic pass raises outside its per-message error handling) stays dead
and its queue fills while every other runner goes on. This check compares the runners the master's
children are with the runners the role configured (RUNNERS_FILE: `name instances` lines) and
restarts mailman3.service when one is missing in two looks GRACE seconds apart.

It does nothing while mailman3 is not active (a standby back-end, a stopped or failing Mailman are
systemd's business), nor when RUNNERS_FILE is newer than the running master (the master still runs
the previous configuration; the role's handler restarts it).

    mailman-runner-check [--runners FILE] [--grace SECONDS]
    mailman-runner-check --validate FILE      check a runners file's syntax (the role's validate:)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

RUNNERS_FILE = Path("/etc/mailman3/mailstack-runners")
UNIT = "mailman3.service"
RUNNER_ARG = re.compile(r"^--runner=([a-z]+):(\d+):(\d+)$")
LINE = re.compile(r"[a-z]+ [1-9]\d*")


class BadRunnersFile(ValueError):
    pass


def parse_runners(text: str, source: str = "runners file") -> dict[str, int]:
    """{name: instances} from `name instances` lines (# comments and blank lines ignored)."""
    runners: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) != 2 or not LINE.fullmatch(" ".join(words)):
            raise BadRunnersFile(f"{source}:{number}: expected 'name instances', got {line.strip()!r}")
        if words[0] in runners:
            raise BadRunnersFile(f"{source}:{number}: runner '{words[0]}' given twice")
        runners[words[0]] = int(words[1])
    if not runners:
        raise BadRunnersFile(f"{source}: names no runner")
    return runners


def expected_slices(runners: dict[str, int]) -> set[tuple[str, int]]:
    return {(name, index) for name, count in runners.items() for index in range(count)}


def running_slices(master: int, proc: Path = Path("/proc")) -> set[tuple[str, int]]:
    """(name, slice) of every runner that is a child of the master (gunicorn's REST workers are the
    rest runner's children, not the master's, and are not counted)."""
    found: set[tuple[str, int]] = set()
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:  # gone meanwhile
            continue
        # comm (field 2) may hold spaces and parentheses: the fields after its last ')' are fixed.
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) != master:
            continue
        for arg in cmdline:
            match = RUNNER_ARG.match(arg.decode(errors="replace"))
            if match:
                found.add((match[1], int(match[2])))
    return found


def describe(slices: set[tuple[str, int]], runners: dict[str, int]) -> str:
    return ", ".join(f"{name}:{index}:{runners.get(name, 1)}" for name, index in sorted(slices))


def unit_state() -> tuple[str, int, float]:
    """mailman3's ActiveState, its master's pid (0 if none) and when it became active (unix time)."""
    out = subprocess.run(
        ["systemctl", "show", UNIT, "--timestamp=unix",
         "--property=ActiveState", "--property=MainPID", "--property=ActiveEnterTimestamp"],
        capture_output=True, text=True, check=True).stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    since = props.get("ActiveEnterTimestamp", "").lstrip("@")
    return props.get("ActiveState", ""), int(props.get("MainPID") or 0), float(since) if since else 0.0


def look(runners_file: Path, runners: dict[str, int]) -> tuple[int, set[tuple[str, int]]] | None:
    """(master pid, missing runners), or None when there is nothing to check now."""
    state, master, since = unit_state()
    if state != "active" or master == 0:
        return None
    # systemd gives whole seconds: a file written in the second the master started counts as older
    # (at worst one restart too many, never a check left off until the next restart).
    if int(runners_file.stat().st_mtime) > since:
        log(5, f"{runners_file} changed after {UNIT} started: not checked until Mailman restarts")
        return None
    return master, expected_slices(runners) - running_slices(master)


def log(priority: int, message: str) -> None:
    # journald reads the <N> prefix as the syslog priority.
    print(f"<{priority}>{message}", file=sys.stderr, flush=True)


def check(runners_file: Path, grace: float) -> int:
    runners = parse_runners(runners_file.read_text(), str(runners_file))
    first = look(runners_file, runners)
    if not first or not first[1]:
        return 0
    # A runner the master is restarting (SIGUSR1, `mailman restart`) is back within a second or two.
    time.sleep(grace)
    second = look(runners_file, runners)
    if not second or second[0] != first[0] or not (missing := first[1] & second[1]):
        return 0
    log(4, f"Mailman's master (pid {second[0]}) lost its runner(s) {describe(missing, runners)} "
           f"and does not restart crashed runners: restarting {UNIT}")
    subprocess.run(["systemctl", "restart", UNIT], check=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", type=Path, default=RUNNERS_FILE)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--validate", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    try:
        if args.validate:
            parse_runners(args.validate.read_text(), str(args.validate))
            return 0
        return check(args.runners, args.grace)
    except (BadRunnersFile, OSError, subprocess.CalledProcessError) as err:
        log(3, str(err))
        return 1


if __name__ == "__main__":
    sys.exit(main())
