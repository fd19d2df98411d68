"""What the verify tests of the molecule scenarios share: their hosts, and reading a playbook run."""

from __future__ import annotations

import os
import re

import testinfra


def host(name: str):
    """A scenario container through `docker exec` (quick: the verify steps run many commands)."""
    return testinfra.get_host(f"docker://{name}")


def molecule_inventory() -> str:
    """The scenario's inventory, as molecule wrote it for this run."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    assert inventory, "MOLECULE_INVENTORY_FILE is not set: run through molecule verify"
    return inventory


def ansible_host(name: str):
    """A scenario host through Ansible with the scenario's inventory (its host variables)."""
    return testinfra.get_host(f"ansible://{name}", ansible_inventory=molecule_inventory())


def flat(output: str) -> str:
    """Output with every run of whitespace made one space (the callback may fold long lines)."""
    return " ".join(output.split())


def recap(output: str, name: str) -> dict[str, int]:
    """The PLAY RECAP counters of one host in a playbook's output (ok, changed, failed, ...)."""
    match = re.search(rf"{re.escape(name)}\s*:\s*((?:\w+=\d+\s*)+)", output)
    assert match, output[-3000:]
    return {key: int(value) for key, value in re.findall(r"(\w+)=(\d+)", match.group(1))}
