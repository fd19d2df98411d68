#!/usr/bin/env python3
"""Issue 15, part 3: how long provisioning the lab takes, and what the Ansible settings change.

Steps, each timed from the controller and in this order:
  cold         scripts/lab destroy + up, fact cache emptied, then `scripts/lab converge` (site.yml)
  no-change    site.yml again as scripts/lab runs it: Mitogen's strategy (mitogen_linear) and the
               project's ansible.cfg (pipelining, jsonfile fact cache, forks 12)
  variants     the no-change run again with one setting changed: Mitogen off (Ansible's own linear
               strategy, pipelining on), Mitogen and pipelining off, the fact cache off (facts
               gathered on every run), forks 5
  scale        a fifth relay: `scripts/lab up` with an extra inventory, then
               `scale.yml --limit relay4,mailman_core,mailman_web`; then `remove-node.yml -e node=relay4`
Each run's changed tasks are summed from its PLAY RECAP. Prints the table and writes the section
"provisioning" of docs/benchmarks/README.md. Goal (issue 15): a no-change run in under a fifth of
the cold one.

usage: bench/provisioning.py [--skip-cold] [--no-variants] [--no-scale]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import DOCS, ROOT, bar_chart, command_line, machine, markdown_table, text_table, write_section

LAB = ROOT / "scripts" / "lab"
NEW_RELAY, NEW_RELAY_ADDRESS = "relay4", "172.30.0.34"
# Each no-change variant changes one setting (scripts/lab keeps a strategy given in the environment).
VARIANTS = {
    "no-change, Mitogen off (linear)": {"ANSIBLE_STRATEGY": "linear"},
    "no-change, Mitogen off, pipelining off": {"ANSIBLE_STRATEGY": "linear", "ANSIBLE_PIPELINING": "False"},
    "no-change, fact cache off": {"ANSIBLE_CACHE_PLUGIN": "memory"},
    "no-change, forks 5": {"ANSIBLE_FORKS": "5"},
}


def run(args: list[str], env: dict[str, str] | None = None, must: bool = True) -> tuple[float, str]:
    """Run scripts/lab with args; (seconds, output). A failed run ends the benchmark when must,
    else its time is None and its output the error."""
    t0 = time.monotonic()
    proc = subprocess.run(
        [str(LAB), *args],
        cwd=ROOT,
        env={**os.environ, "ANSIBLE_NOCOLOR": "1", **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.monotonic() - t0
    if proc.returncode != 0 and not must:
        return None, proc.stdout[-3000:] + proc.stderr[-2000:]
    if proc.returncode != 0:
        sys.exit(
            f"provisioning: scripts/lab {' '.join(args)} failed:\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
        )
    return took, proc.stdout


def changed(output: str) -> int:
    """The changed tasks of every PLAY RECAP in the output."""
    return sum(int(n) for n in re.findall(r"^\S+\s+: ok=\d+\s+changed=(\d+)", output, re.M))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skip-cold", action="store_true", help="keep the running lab (no cold run)")
    parser.add_argument("--no-variants", action="store_true", help="only the project's settings")
    parser.add_argument("--no-scale", action="store_true", help="no relay added and removed")
    args = parser.parse_args()

    started = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    load_before = machine()
    rows: list[tuple[str, float, int]] = []
    if not args.skip_cold:
        run(["destroy"])
        shutil.rmtree(ROOT / ".cache" / "facts", ignore_errors=True)
        took, _ = run(["up"])
        rows.append(("containers up (scripts/lab up)", took, 0))
        took, out = run(["converge"])
        rows.append(("cold site.yml", took, changed(out)))
        print(f"cold: {took:.0f} s")
    took, out = run(["converge"])
    rows.append(("no-change site.yml", took, changed(out)))
    print(f"no-change: {took:.0f} s")
    if not args.no_variants:
        for name, env in VARIANTS.items():
            took, out = run(["converge"], env)
            rows.append((name, took, changed(out)))
            print(f"{name}: {took:.0f} s")
    if not args.no_scale:
        with tempfile.TemporaryDirectory() as tmp:
            extra = Path(tmp) / "relay4.yml"
            relay = {
                "mailstack__address": NEW_RELAY_ADDRESS,
                "mailstack__secret_dir": str(ROOT / "secret" / "lab"),
            }
            extra.write_text(json.dumps({"all": {"children": {"relays": {"hosts": {NEW_RELAY: relay}}}}}))
            env = {"MAILSTACK_LAB_EXTRA_INVENTORY": str(extra)}
            try:
                run(["up"], env)
                took, out = run(
                    ["play", "playbooks/scale.yml", "--limit", f"{NEW_RELAY},mailman_core,mailman_web"], env
                )
                rows.append(
                    (
                        f"scale.yml --limit {NEW_RELAY},mailman_core,mailman_web (a cold relay)",
                        took,
                        changed(out),
                    )
                )
                took, out = run(
                    [
                        "play",
                        "playbooks/remove-node.yml",
                        "-e",
                        f"node={NEW_RELAY}",
                        "-e",
                        "mailstack__drain_timeout=10",
                    ],
                    env,
                )
                rows.append((f"remove-node.yml -e node={NEW_RELAY}", took, changed(out)))
            finally:
                subprocess.run(
                    [str(LAB), "destroy", NEW_RELAY], cwd=ROOT, env={**os.environ, **env}, check=False
                )

    base = next((t for name, t, _ in rows if name == "cold site.yml"), None)
    header = ["run", "seconds", "changed tasks", "of the cold run"]
    table = [(name, f"{t:.0f}", str(c), f"{t / base:.2f}" if base else "-") for name, t, c in rows]
    print(text_table(header, table))
    goal = ""
    no_change = next(t for name, t, _ in rows if name == "no-change site.yml")
    if base:
        met = "met" if no_change < base / 5 else "missed"
        goal = (
            f"\nGoal (a no-change run in under a fifth of the cold one): **{met}**, "
            f"{no_change:.0f} s against {base:.0f} s ({no_change / base:.2f}).\n"
        )
    png = DOCS / "provisioning.png"
    title = "Provisioning the lab, seconds per run (bench/provisioning.py, one run each)"
    seconds = [("seconds", [t for _, t, _ in rows])]
    charted = bar_chart(png, title, [name for name, _, _ in rows], seconds, "seconds")
    body = (
        "## Provisioning (issue 15, part 3)\n\n"
        f"Written by `{command_line('provisioning.py', sys.argv[1:])}`" + f" on {started}. "
        f"Machine: {load_before} (before), {machine()} (after).\n\n"
        "The lab inventory (13 hosts), `site.yml` through `scripts/lab converge` with Mitogen's "
        "strategy and the project's `ansible.cfg` (pipelining on, jsonfile fact cache, forks 12, "
        "`gathering = smart`); each variant changes one setting by its environment variable on a "
        "no-change run. One run each, in this order: read them as ratios within the run.\n\n"
        + markdown_table(header, table)
        + goal
        + (f"\n![Provisioning]({png.name})\n" if charted else "\n(No chart: matplotlib is not installed.)\n")
    )
    print(f"written to {write_section('provisioning', body)}")


if __name__ == "__main__":
    main()
