"""Every play that loads playbooks/vars/topology.yml derives the topology first
(playbooks/tasks/topology.yml, a run_once set_fact), and no other play uses it: a play that used
mailstack__topology without deriving it would get a fact an earlier play of the same run left,
stale once failover.yml or remove-node.yml changed the topology's inputs."""

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = sorted(
    p
    for pattern in ("playbooks/*.yml", "molecule/*/*.yml", "roles/*/molecule/*/*.yml", "bench/*/*.yml")
    for p in ROOT.glob(pattern)
    if p.name != "molecule.yml"
)


def plays(path: Path) -> list[dict]:
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, list):
        return []
    return [p for p in data if isinstance(p, dict) and "hosts" in p]


def loads_topology(play: dict) -> bool:
    return any(str(f).endswith("vars/topology.yml") for f in play.get("vars_files", []))


def derives_first(play: dict) -> bool:
    first = (play.get("pre_tasks") or [{}])[0]
    return str(first.get("ansible.builtin.import_tasks", "")).endswith("tasks/topology.yml")


def findings(paths: list[Path], root: Path = ROOT) -> list[str]:
    out = []
    for path in paths:
        for play in plays(path):
            where = f"{path.relative_to(root)}: play {play.get('name')!r}"
            if loads_topology(play) and not derives_first(play):
                out.append(f"{where} loads vars/topology.yml but does not import tasks/topology.yml first")
            if not loads_topology(play) and "mailstack__topology" in yaml.safe_dump(play):
                out.append(f"{where} uses mailstack__topology without loading vars/topology.yml")
    return out


def test_the_playbooks_are_found():
    names = {str(p.relative_to(ROOT)) for p in PLAYBOOKS}
    assert {"playbooks/site.yml", "playbooks/mx.yml", "molecule/mx/converge.yml"} <= names


@pytest.mark.parametrize("path", PLAYBOOKS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_play_loading_the_topology_derives_it_first(path):
    assert findings([path]) == []


def test_a_play_that_skips_the_derivation_or_the_vars_file_is_named(tmp_path):
    bad = tmp_path / "bad.yml"
    bad.write_text(yaml.safe_dump([
        {"name": "No derivation", "hosts": "all", "vars_files": ["vars/topology.yml"], "tasks": []},
        {"name": "Derived later", "hosts": "all", "vars_files": ["vars/topology.yml"],
         "pre_tasks": [{"name": "x", "ansible.builtin.debug": {}},
                       {"name": "y", "ansible.builtin.import_tasks": "tasks/topology.yml"}]},
        {"name": "No vars file", "hosts": "all",
         "tasks": [{"name": "z", "ansible.builtin.debug": {"msg": "{{ mailstack__topology.db_port }}"}}]},
        {"name": "Fine", "hosts": "all", "vars_files": ["vars/topology.yml"],
         "pre_tasks": [{"name": "t", "ansible.builtin.import_tasks": "tasks/topology.yml"}]},
    ]))
    assert findings([bad], tmp_path) == [
        "bad.yml: play 'No derivation' loads vars/topology.yml but does not import tasks/topology.yml first",
        "bad.yml: play 'Derived later' loads vars/topology.yml but does not import tasks/topology.yml first",
        "bad.yml: play 'No vars file' uses mailstack__topology without loading vars/topology.yml",
    ]
