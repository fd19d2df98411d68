"""Run ansible-playbook from a molecule scenario's verify tests (a re-run, a changed setting,
a bad input that must be refused), with the project's roles, filters and collections, against the
scenario's inventory. Scenario tests import it as support.molecule_playbook (tests/ is on the path).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support.paths import ROOT

TOP = ROOT


def ansible_playbook(
    playbook: Path | str,
    *args: str,
    extra: dict | None = None,
    inventory: str | None = None,
    timeout: int = 900,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """ansible-playbook PLAYBOOK -i <the scenario's inventory> ARGS [-e EXTRA as JSON], never raising
    on a failed run (the caller asserts on returncode and output)."""
    inventory = inventory or os.environ.get("MOLECULE_INVENTORY_FILE")
    if not inventory:
        raise RuntimeError("MOLECULE_INVENTORY_FILE is not set: run through molecule verify")
    run_env = dict(os.environ)
    run_env.update(
        ANSIBLE_ROLES_PATH=str(TOP / "roles"),
        ANSIBLE_COLLECTIONS_PATH=f"{TOP / 'collections'}:{TOP / '.cache' / 'collections'}",
        ANSIBLE_HOME=str(TOP / ".cache" / "ansible"),
        ANSIBLE_NOCOLOR="1",
        ANSIBLE_FORCE_COLOR="0",
        ANSIBLE_PIPELINING="1",
        # The output the tests read, Ansible's own: results as JSON on one line (molecule's YAML folds
        # long messages and doubles the quotes in them), failures on stdout (molecule sends them to
        # stderr).
        ANSIBLE_CALLBACK_RESULT_FORMAT="json",
        ANSIBLE_DISPLAY_FAILED_STDERR="false",
    )
    # Inside `molecule verify`, ANSIBLE_CONFIG is molecule's own file: the settings of the converge
    # (Mitogen's strategy, forks, the interpreter), so a re-run here runs as the converge did. The
    # project's ansible.cfg (exported by the Makefile) belongs to the lab, not to a scenario.
    # It runs in the playbook's directory, where no ansible.cfg is found either.
    if run_env.get("ANSIBLE_CONFIG") == str(TOP / "ansible.cfg"):
        del run_env["ANSIBLE_CONFIG"]
    run_env.update(env or {})
    binary = shutil.which("ansible-playbook") or str(Path(sys.executable).with_name("ansible-playbook"))
    cmd = [binary, "-i", inventory, str(playbook), *args]
    if extra is not None:
        cmd += ["-e", json.dumps(extra)]
    return subprocess.run(cmd, env=run_env, cwd=Path(playbook).parent, capture_output=True, text=True,
                          timeout=timeout, check=False)
