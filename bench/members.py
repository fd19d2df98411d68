#!/usr/bin/env python3
"""How long the mailman_core role takes to make a big list's members match the data.

On the running lab, the back-end's playbook (playbooks/mailman_core.yml, limited to the active
back-end) runs with one extra list in the host layer (mailman_core__host_lists, -e), in this order:
  create       the list with N members (default 10,000) that Mailman does not have yet
  no-change    the same data again
  replace      a tenth of the members replaced by new addresses (purge_members: true)
  delete       the list with state: absent
Each row is the time of the role's list task alone ("Make domains and lists match the data", from
the profile_tasks callback) and of the whole playbook run, with the members the step changed and
the members per second of the list task. Mailman's REST API is asked for the roster after each
step: the table only shows a step whose result is what the data says. The list is deleted at the
end, also after a failure. Prints the table and writes the section "members" of
docs/benchmarks/README.md.

usage: scripts/lab ensure && .venv/bin/python bench/members.py [--members 10000] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import ROOT, command_line, machine, markdown_table, text_table, write_section

LAB = ROOT / "scripts" / "lab"
BACKEND = "list1"
LIST = "benchmembers@lists.mailstack.test"
TASK = "Make domains and lists match the data"
# The roster, asked from the back-end itself (REST listens on its internal address or loopback).
ROSTER = r"""
import base64, json, sys, urllib.error, urllib.request
url, user = sys.argv[1:3]
password = sys.stdin.read().strip()
token = base64.b64encode(f"{user}:{password}".encode()).decode()
req = urllib.request.Request(url, headers={"Authorization": "Basic " + token})
try:
    data = json.load(urllib.request.urlopen(req, timeout=60))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code})); sys.exit(0)
print(json.dumps({"status": 200, "members": sorted(m["email"] for m in data.get("entries", []))}))
"""


def members(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:05d}@remote-{'ab'[i % 2]}.test" for i in range(count)]


def play(extra: dict) -> tuple[float, float, str]:
    """The back-end's playbook with extra vars; (list task seconds, run seconds, output)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(extra, handle)
    try:
        t0 = time.monotonic()
        proc = subprocess.run(
            [str(LAB), "play", "playbooks/mailman_core.yml", "--limit", BACKEND, "-e", f"@{handle.name}"],
            cwd=ROOT,
            env={
                **os.environ,
                "ANSIBLE_NOCOLOR": "1",
                "ANSIBLE_CALLBACKS_ENABLED": "ansible.posix.profile_tasks",
            },
            capture_output=True,
            text=True,
            check=False,
        )
        took = time.monotonic() - t0
    finally:
        os.unlink(handle.name)
    if proc.returncode != 0:
        sys.exit(f"members: playbooks/mailman_core.yml failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}")
    task = re.search(rf"{re.escape(TASK)} -+ ([0-9.]+)s", proc.stdout)
    if not task:
        sys.exit(f"members: no time for the task {TASK!r} in the output:\n{proc.stdout[-3000:]}")
    return float(task.group(1)), took, proc.stdout


def roster() -> dict:
    """The list's members as Mailman's REST API has them ({status, members})."""
    secret = ROOT / "secret" / "lab" / "mailman_core" / "rest.password"
    password = secret.read_text().strip()
    # The lab has web nodes: the REST API listens on the back-end's internal address.
    inventory = yaml.safe_load((ROOT / "inventories" / "lab" / "hosts.yml").read_text())
    host = next(
        group["hosts"][BACKEND]["mailstack__address"]
        for group in inventory["all"]["children"].values()
        if BACKEND in (group or {}).get("hosts", {})
    )
    url = f"http://{host}:8001/3.1/lists/{LIST.replace('@', '.')}/roster/member?count=100000&page=1"
    proc = subprocess.run(
        ["docker", "exec", "-i", f"mailstack-lab-{BACKEND}", "python3", "-c", ROSTER, url, "restadmin"],
        input=password,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.exit(f"members: reading the roster from {BACKEND} failed:\n{proc.stderr[-2000:]}")
    result: dict = json.loads(proc.stdout)
    return result


def entry(member_list: list[str], **fields: object) -> dict:
    return {
        "mailman_core__host_lists": [
            {
                "name": LIST,
                "owners": ["owner@remote-a.test"],
                "settings": {
                    "description": "bench/members.py",
                    "advertised": False,
                    "send_welcome_message": False,
                },
                "members": member_list,
                **fields,
            }
        ]
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=10000, help="members of the list (default 10000)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks alone")
    args = parser.parse_args()
    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = machine()
    first = members("bench", args.members)
    tenth = args.members // 10
    second = first[tenth:] + members("benchnew", tenth)
    steps = [
        ("create", entry(first), args.members, first),
        ("no-change", entry(first), 0, first),
        ("replace a tenth", entry(second, purge_members=True), 2 * tenth, second),
        (
            "delete the list",
            {"mailman_core__host_lists": [{"name": LIST, "state": "absent"}]},
            args.members,
            None,
        ),
    ]
    rows = []
    try:
        for name, extra, changed, expected in steps:
            task, run, _ = play(extra)
            seen = roster()
            if expected is None:
                assert seen["status"] == 404, f"{name}: the list still exists ({seen['status']})"
            else:
                assert seen.get("members") == sorted(expected), f"{name}: Mailman's roster is not the data's"
            rate = f"{changed / task:.0f}" if changed and task else "-"
            rows.append((name, str(changed), f"{task:.1f}", f"{run:.0f}", rate))
            print(f"{name}: list task {task:.1f} s, run {run:.0f} s")
    finally:
        if not rows or rows[-1][0] != "delete the list":
            play({"mailman_core__host_lists": [{"name": LIST, "state": "absent"}]})
    header = ["step", "members changed", "list task s", "playbook run s", "members/s (list task)"]
    print(text_table(header, rows))
    if args.no_write:
        return
    body = (
        "## Members (a big list's roster as data)\n\n"
        f"Written by `{command_line('members.py', sys.argv[1:])}` on {started}. "
        f"Machine: {load_before} (before), {machine()} (after).\n\n"
        f"`playbooks/mailman_core.yml --limit {BACKEND}` on the lab with one extra list of "
        f"{args.members:,} members in `mailman_core__host_lists`; after each step Mailman's roster was "
        "read back over REST and equals the data. One run of each step, in this order.\n\n"
        + markdown_table(header, rows)
        + "\n"
    )
    print(f"written to {write_section('members', body)}")


if __name__ == "__main__":
    main()
