"""The sample inventories (inventories/*-sample) as Ansible reads them: each parses, and the topology
derived from it is the layout its README describes."""

import configparser
from pathlib import Path

import pytest
from ansible_collections.mailstack.site.plugins.plugin_utils.topology import topology as mailstack_topology
from support import inventory

ROOT = Path(__file__).resolve().parents[2]


def read(name: str) -> tuple[dict[str, list[str]], dict[str, dict]]:
    """(groups, hostvars) of inventories/<name>, every group with its children's hosts."""
    data = inventory.read(f"inventories/{name}")
    groups = {g: inventory.hosts(data, g) for g in data if g != "_meta"}
    return groups, data["_meta"]["hostvars"]


def test_the_production_sample_is_a_cluster():
    topo = mailstack_topology(*read("production-sample"))
    assert topo["single_server"] is False
    assert topo["inbound_hosts"] == ["mx1.example.org", "mx2.example.org"]
    assert topo["backend_active"] == "lists1.example.org"
    assert len(topo["relay_next_hops"]) == 3


def test_the_single_server_sample_is_one_host_that_scans_on_port_25():
    groups, hostvars = read("single-server-sample")
    topo = mailstack_topology(groups, hostvars)
    assert topo["single_server"] is True
    assert topo["inbound_hosts"] == ["lists.example.org"] == topo["groups"]["db"]
    assert topo["list_domains"] == ["lists.example.org"]
    assert topo["relay_next_hops"] == []  # postfix-out delivers by MX lookup
    smtp = next(r for r in topo["ingress"]["lists.example.org"] if r["ports"] == [25])
    assert smtp["sources"] == "any"
    # The scanning settings of the MX nodes apply to the server itself.
    server = hostvars["lists.example.org"]
    assert server["rspamd__milter_default_action"] == "tempfail"
    assert server["clamav__freshclam_enabled"] is True



@pytest.mark.parametrize("name", ["production-sample", "single-server-sample"])
def test_the_samples_log_in_as_a_sudo_user_and_check_host_keys(name):
    _, hostvars = read(name)
    for host, variables in hostvars.items():
        assert variables.get("ansible_user") not in (None, "root"), host
        assert variables.get("ansible_become") is True, host
        assert "ansible_host_key_checking" not in variables, host
        assert "StrictHostKeyChecking" not in str(variables.get("ansible_ssh_common_args", "")), host
        assert variables.get("mailstack__admin_networks"), host
    config = configparser.ConfigParser()
    config.read(ROOT / "ansible.cfg")
    assert config.getboolean("defaults", "host_key_checking", fallback=True) is True
