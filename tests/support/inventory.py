"""An inventory of this repository as Ansible reads it (`ansible-inventory --list`), for the unit
tests (the sample inventories), the end-to-end suite and the benchmarks (the lab)."""

import json
import os
import subprocess
from pathlib import Path

from support.paths import ROOT


def read(*sources: str | Path) -> dict:
    """`ansible-inventory --list` of the sources (paths relative to the repository, in order), with
    the project's ansible.cfg."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg")}
    env.setdefault("ANSIBLE_HOME", str(ROOT / ".cache" / "ansible"))
    args = [a for source in sources for a in ("-i", str(ROOT / source))]
    out = subprocess.run(
        [str(ROOT / ".venv/bin/ansible-inventory"), *args, "--list"],
        capture_output=True, text=True, check=True, cwd=ROOT, env=env,
    )
    return json.loads(out.stdout)


def hosts(data: dict, group: str) -> list[str]:
    """The hosts of a group of read()'s output, its children's included, in inventory order."""
    node = data.get(group, {})
    found = list(node.get("hosts", []))
    for child in node.get("children", []):
        found += [h for h in hosts(data, child) if h not in found]
    return found
