"""The molecule scenarios can run at the same time (``scripts/run-tests`` runs two at once).

Two scenarios collide when they share a container name, a docker network or a subnet: the second
``create`` then fails, or its ``destroy`` removes the other scenario's containers.  These tests read
every ``molecule.yml`` and require each of those to belong to one scenario only.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCENARIOS = sorted([*ROOT.glob("roles/*/molecule/*/molecule.yml"), *ROOT.glob("molecule/*/molecule.yml")])


def _platforms(path: Path) -> list[dict]:
    return yaml.safe_load(path.read_text(encoding="utf-8")).get("platforms", [])


def _owners(values_of) -> dict[str, set[str]]:
    """Map each value to the scenarios (paths relative to the repository) that use it."""
    owners: dict[str, set[str]] = defaultdict(set)
    for path in SCENARIOS:
        for value in values_of(_platforms(path)):
            owners[value].add(str(path.parent.relative_to(ROOT)))
    return owners


def _shared(owners: dict[str, set[str]]) -> dict[str, list[str]]:
    return {value: sorted(scens) for value, scens in owners.items() if len(scens) > 1}


def test_scenarios_are_found() -> None:
    assert len(SCENARIOS) >= 2, SCENARIOS


def test_container_names_are_unique() -> None:
    seen: dict[str, str] = {}
    clashes = []
    for path in SCENARIOS:
        scenario = str(path.parent.relative_to(ROOT))
        for platform in _platforms(path):
            name = platform["name"]
            if name in seen:
                clashes.append(f"{name}: {seen[name]} and {scenario}")
            seen[name] = scenario
    assert clashes == []


def test_networks_belong_to_one_scenario() -> None:
    def networks(platforms: list[dict]) -> list[str]:
        return [net["name"] for p in platforms for net in p.get("networks", [])]

    assert _shared(_owners(networks)) == {}


def test_subnets_belong_to_one_scenario() -> None:
    def subnets(platforms: list[dict]) -> list[str]:
        return [
            ipam["subnet"]
            for p in platforms
            for net in p.get("docker_networks", [])
            for ipam in net.get("ipam_config", [])
        ]

    assert _shared(_owners(subnets)) == {}


def test_every_platform_is_on_its_scenario_network() -> None:
    """A platform without a network would land on docker's default bridge, shared by everyone."""
    missing = [
        f"{path.parent.relative_to(ROOT)}: {p['name']}"
        for path in SCENARIOS
        for p in _platforms(path)
        if not p.get("networks")
    ]
    assert missing == []


def test_platforms_leave_the_shared_definition_to_create_yml() -> None:
    """The systemd platform is defined once (.config/molecule/create.yml): a scenario restating it
    whole is the copy the definition replaced."""
    shared = {"image", "pre_build_image", "command", "security_opts", "cgroupns_mode"}
    restated = [
        f"{path.parent.relative_to(ROOT)}: {p['name']}: {sorted(shared & set(p))}"
        for path in SCENARIOS
        for p in _platforms(path)
        if shared & set(p)
    ]
    assert restated == []


def test_every_scenario_creates_through_the_shared_definition() -> None:
    """Role scenarios inherit .config/molecule/config.yml's create playbook; project scenarios,
    whose project directory is the repository's top, name the same file."""
    for path in SCENARIOS:
        create = yaml.safe_load(path.read_text()).get("provisioner", {}).get("playbooks", {}).get("create")
        if path.is_relative_to(ROOT / "molecule"):
            assert create == "${MOLECULE_PROJECT_DIRECTORY}/.config/molecule/create.yml", path
        else:
            assert create is None, path
