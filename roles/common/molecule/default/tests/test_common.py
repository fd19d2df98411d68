"""Behaviour of the common role: names resolve, time zone and apt settings are live."""

import pytest

PEERS = {"common-a": "172.31.1.10", "common-b": "172.31.1.11"}


@pytest.mark.parametrize("peer", sorted(PEERS))
def test_inventory_names_resolve(host, peer):
    out = host.check_output(f"getent hosts {peer}.molecule.test")
    assert out.split()[0] == PEERS[peer]
    assert host.check_output(f"getent hosts {peer}").split()[0] == PEERS[peer]


def test_a_name_on_several_hosts_resolves_to_all_of_them(host):
    # The site's internal web name is on every proxy: a client (Python's socket.create_connection)
    # tries the next address when one does not answer, so every address must come back.
    out = host.check_output("getent ahostsv4 web.mailstack.internal")
    assert {line.split()[0] for line in out.splitlines()} == set(PEERS.values())


def test_time_zone_is_in_effect(host):
    # date(1) uses /etc/localtime: Paris is CET or CEST, never UTC.
    assert host.check_output("date +%Z") in ("CET", "CEST")


def test_host_packages_installed(host):
    assert host.package("file").is_installed


def test_apt_goes_through_the_proxy_only_where_set(host):
    proxy = host.check_output("apt-config dump Acquire::http::Proxy")
    if host.backend.get_hostname() != "common-a":
        assert "Proxy" not in proxy
        return
    assert 'Acquire::http::Proxy "http://common-b.molecule.test:3142";' in proxy
    # A real download through the proxy: apt-cacher-ng on common-b logs it. Its log is emptied
    # first, so what it shows afterwards comes from this update.
    cache = host.get_host("ansible://common-b", ansible_inventory=host.backend.ansible_inventory)
    cache.run_expect([0], "truncate -s 0 /var/log/apt-cacher-ng/apt-cacher.log")
    host.run_expect([0], "rm -rf /var/lib/apt/lists/* && apt-get -q update")
    logged = cache.check_output("cat /var/log/apt-cacher-ng/apt-cacher.log")
    assert "InRelease" in logged


def test_unattended_security_updates_on(host):
    assert host.package("unattended-upgrades").is_installed
    conf = host.check_output("apt-config dump APT::Periodic")
    assert 'APT::Periodic::Unattended-Upgrade "1";' in conf


def test_the_run_logged_in_as_deploy_and_became_root_with_sudo(host):
    """common-a was converged as the production samples log in (molecule.yml): sudo logged the
    role's tasks as deploy's commands run as root."""
    if host.backend.get_hostname() != "common-a":
        pytest.skip("common-b is managed as root")
    log = host.check_output("journalctl _COMM=sudo --no-pager -o cat")
    lines = [line.strip() for line in log.splitlines()]
    became = [line for line in lines if line.startswith("deploy : ") and "USER=root" in line]
    # Ansible's runs: Mitogen starts one Python through sudo per become context (plain Ansible, a
    # `/bin/sh -c 'echo BECOME-SUCCESS-...; python3 ...'` per task); testinfra's commands are the rest.
    runs = [line for line in became if "COMMAND=/usr/bin/python3 -c" in line or "BECOME-SUCCESS" in line]
    assert runs, log[-2000:]
