#!/usr/bin/python3
"""Mailman's watchdog on a back-end (role mailman_core; run by mailman3-runners.timer): stop Mailman
where the shared data names another back-end, restart it when one of its runners has died.

The shared data's marker (MARKER, /var/lib/mailman3/mailstack-active) names the one back-end that may
run Mailman on it; playbooks/failover.yml moves it. A back-end that was cut off during a failover may
still run Mailman when it comes back: with --marker and --host, the check stops mailman3 there first
(and does nothing else). With --owner-check it only says whether the marker names HOST (exit 0) or
not (exit 1, the reason on stderr): the ExecCondition of mailman3.service and of the periodic jobs,
so that systemd itself, not only Ansible, refuses to start Mailman on another back-end's data.

Mailman's master restarts a runner only when the runner exits on SIGUSR1: a runner that crashes (a
database outage during its periodic pass raises outside its per-message error handling) stays dead
and its queue fills while every other runner goes on. This check compares the master's children
with the runners that master was started with (RUNNERS: `name instances` lines, copied from
/etc/mailman3/mailstack-runners by mailman3's ExecStartPost) and restarts mailman3.service when one
is missing in two looks GRACE seconds apart: at most MAX restarts in WINDOW seconds (a runner that
dies at every start would otherwise have Mailman restarted for ever); beyond that it logs an error
and leaves Mailman alone.

It does nothing while mailman3 is not active: a standby back-end, a stopped Mailman, and a master
that died or could not start, which systemd starts again (the role's drop-in, Restart=on-failure).

    mailman-runner-check [--marker MARKER --host HOST] [--runners FILE] [--grace SECONDS]
                         [--history FILE] [--max-restarts MAX] [--window SECONDS]
    mailman-runner-check --owner-check --marker MARKER --host HOST
    mailman-runner-check --validate FILE      check a runners file's syntax (the role's validate:)
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

RUNNERS_FILE = Path("/run/mailman3/mailstack-runners")
# When this check restarted Mailman (unix times, one a line), to cap the restarts.
HISTORY_FILE = Path("/run/mailstack/mailman-runner-check.restarts")
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


def unit_state() -> tuple[str, int]:
    """mailman3's ActiveState and its master's pid (0 if none)."""
    out = subprocess.run(["systemctl", "show", UNIT, "--property=ActiveState", "--property=MainPID"],
                         capture_output=True, text=True, check=True).stdout
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return props.get("ActiveState", ""), int(props.get("MainPID") or 0)


def look(runners_file: Path) -> tuple[int, dict[str, int], set[tuple[str, int]]] | None:
    """(master pid, the runners it was started with, those missing), or None: nothing to check now."""
    state, master = unit_state()
    if state != "active" or master == 0:
        return None
    try:
        text = runners_file.read_text()
    except FileNotFoundError:
        log(5, f"{runners_file} is missing (Mailman was started before the role's drop-in copied it): "
               "not checked until Mailman restarts")
        return None
    runners = parse_runners(text, str(runners_file))
    return master, runners, expected_slices(runners) - running_slices(master)


def data_owner(marker: Path) -> str | None:
    """The back-end the marker names ('' for an empty marker), or None when it cannot be read (the share
    is not mounted, or no back-end was ever made active on it)."""
    try:
        lines = marker.read_text().split()
    except OSError:
        return None
    return lines[0] if lines else ""


def not_owned(marker: Path, host: str) -> str | None:
    """Why HOST may not run Mailman on the shared data, or None when the marker names it."""
    owner = data_owner(marker)
    if owner == host:
        return None
    if owner is None:
        return f"{marker} cannot be read (the shared data is not mounted, or no back-end was made active)"
    return f"the shared data belongs to {owner or 'nobody'} ({marker}), not to {host}"


def fence(marker: Path, host: str) -> bool:
    """Stop mailman3 when the marker does not name HOST; True when it does not (nothing else to do)."""
    why = not_owned(marker, host)
    if why is None:
        return False
    state, _ = unit_state()
    if state in ("active", "activating", "reloading"):
        log(4, f"{why}: stopping {UNIT} here")
        subprocess.run(["systemctl", "stop", UNIT], check=True)
    return True


def recent_restarts(history: Path, now: float, window: float) -> list[float]:
    try:
        times = [float(word) for word in history.read_text().split()]
    except (FileNotFoundError, ValueError):
        times = []
    return [t for t in times if now - window < t <= now]


def log(priority: int, message: str) -> None:
    # journald reads the <N> prefix as the syslog priority.
    print(f"<{priority}>{message}", file=sys.stderr, flush=True)


def check(runners_file: Path, grace: float, history: Path = HISTORY_FILE, max_restarts: int = 3,
          window: float = 3600, *, marker: Path | None = None, host: str = "") -> int:
    if marker is not None and fence(marker, host):
        return 0
    first = look(runners_file)
    if not first or not first[2]:
        return 0
    # A runner the master is restarting (SIGUSR1, `mailman restart`) is back within a second or two.
    time.sleep(grace)
    second = look(runners_file)
    if not second or second[0] != first[0] or not (missing := first[2] & second[2]):
        return 0
    master, runners = second[0], second[1]
    lost = f"Mailman's master (pid {master}) lost its runner(s) {describe(missing, runners)}"
    now = time.time()
    restarts = recent_restarts(history, now, window)
    if len(restarts) >= max_restarts:
        log(3, f"{lost}, but this check restarted {UNIT} {len(restarts)} times in the last {window:.0f} s "
               "already: not again (see journalctl -u mailman3)")
        return 1
    log(4, f"{lost} and does not restart crashed runners: restarting {UNIT}")
    history.parent.mkdir(parents=True, exist_ok=True)
    history.write_text("".join(f"{t:.0f}\n" for t in [*restarts, now]))
    # try-restart: an admin's stop since the second look is not undone.
    subprocess.run(["systemctl", "try-restart", UNIT], check=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runners", type=Path, default=RUNNERS_FILE)
    parser.add_argument("--grace", type=float, default=10.0)
    parser.add_argument("--history", type=Path, default=HISTORY_FILE)
    parser.add_argument("--max-restarts", type=int, default=3)
    parser.add_argument("--window", type=float, default=3600.0)
    parser.add_argument("--validate", type=Path, metavar="FILE")
    parser.add_argument("--marker", type=Path, metavar="MARKER")
    parser.add_argument("--host")
    parser.add_argument("--owner-check", action="store_true")
    args = parser.parse_args(argv)
    if (args.marker is None) != (args.host is None) or (args.owner_check and args.marker is None):
        parser.error("--marker and --host go together (and --owner-check needs them)")
    try:
        if args.validate:
            parse_runners(args.validate.read_text(), str(args.validate))
            return 0
        if args.owner_check:
            why = not_owned(args.marker, args.host)
            if why:
                print(f"{why}: Mailman does not run here (playbooks/failover.yml -e backend={args.host} "
                      "moves it)", file=sys.stderr)
            return 1 if why else 0
        return check(args.runners, args.grace, args.history, args.max_restarts, args.window,
                     marker=args.marker, host=args.host or "")
    except (BadRunnersFile, OSError, subprocess.CalledProcessError) as err:
        log(3, str(err))
        return 1


if __name__ == "__main__":
    sys.exit(main())
