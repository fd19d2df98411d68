# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Derive every tier's peers, networks and next hops from the inventory groups.

The tier playbooks (playbooks/*.yml), the preflight checks and the multi-host molecule
scenarios all read the result of this one filter (playbooks/vars/topology.yml); nothing else
derives a peer list from ``mailstack__address``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where
from ansible_collections.mailstack.site.plugins.plugin_utils.layers import by_name, merge_layers

# The groups of the inventory contract (README, DESIGN): their hosts take these roles.
TIER_GROUPS = ("mx", "mailman_core", "relays", "db", "nfs_server", "mailman_web", "proxy")

# The groups whose hosts use the database (pg_hba and the firewall admit them).
DB_CLIENT_GROUPS = ("mailman_core", "mailman_web")

# Cross-host services: which group listens on which port, and which groups may connect.
# `sources: None` means everyone. A port given as a variable name is read from the listening
# host's variables (inventory layers), else the default, which is the owning role's default:
# tests/unit/test_mailstack_topology.py checks that each default equals the role's.
# Services that only listen on loopback (LMTP 8024, postfix-out, rspamd, clamd) have no entry.
INGRESS = (
    # group, rule name, port (variable, default), proto, source groups (None: anyone)
    ("mx", "smtp", (None, 25), "tcp", None),
    ("mailman_core", "smtp", (None, 25), "tcp", ("mx",)),
    ("mailman_core", "mailman-rest", ("mailman_core__rest_port", 8001), "tcp", ("mailman_web",)),
    # The back-ends' postfix-out, and the web nodes' own Postfix (sign-up and password mail).
    ("relays", "smtp", (None, 25), "tcp", ("mailman_core", "mailman_web")),
    ("db", "postgresql", ("postgresql__port", 5432), "tcp", DB_CLIENT_GROUPS),
    # NFSv4 (the nfs_server role's default): one TCP port, used by the back-ends only.
    ("nfs_server", "nfs", (None, 2049), "tcp", ("mailman_core",)),
    ("mailman_web", "uwsgi", ("mailman_web__uwsgi_port", 8000), "tcp", ("proxy",)),
    ("mailman_web", "memcached", ("mailman_web__memcached_port", 11211), "tcp", ("mailman_web",)),
    ("proxy", "http", (None, 80), "tcp", None),
    ("proxy", "https", (None, 443), "tcp", None),
)

# Every TCP port the roles open on a host of each group (loopback ones included): two services
# of one host must not share a port. A single-server back-end also runs rspamd ("scanning").
_RSPAMD = (
    ("rspamd__milter_port", 11332),
    ("rspamd__normal_port", 11333),
    ("rspamd__controller_port", 11334),
)
LISTENERS = {
    "mx": ((None, 25), *_RSPAMD),
    "mailman_core": (
        (None, 25),
        ("mailman_core__lmtp_port", 8024),
        ("mailman_core__rest_port", 8001),
        ("mailman_core__smtp_port", 10025),
    ),
    "scanning": _RSPAMD,
    "relays": ((None, 25),),
    "db": (("postgresql__port", 5432),),
    "nfs_server": ((None, 2049),),
    # (A web node's own loopback Postfix on 25 runs only where no other Postfix tier does: web.yml.)
    "mailman_web": (("mailman_web__uwsgi_port", 8000), ("mailman_web__memcached_port", 11211)),
    "proxy": ((None, 80), (None, 443)),
}

LOOPBACK_NETWORK = "127.0.0.0/8"
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.ASCII)


_WHERE = Where("topology")


def _error(message: str) -> Exception:
    return _WHERE.error(message)


def _hosts(groups: Mapping[str, Any], group: str) -> list[str]:
    hosts = groups.get(group) or []
    if isinstance(hosts, str | Mapping) or not isinstance(hosts, Sequence):
        raise _error(f"groups['{group}'] must be a list of host names, got {type(hosts).__name__}")
    return list(hosts)


def _address(hostvars: Mapping[str, Any], host: str) -> str:
    try:
        value = hostvars[host]["mailstack__address"]
    except KeyError:
        value = None
    if not isinstance(value, str) or not value:
        raise _error(
            f"host '{host}' has no mailstack__address (its internal address, set in the inventory), "
            f"got {value!r}"
        )
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise _error(
            f"host '{host}': mailstack__address must be an IPv4 or IPv6 address, got {value!r}"
        ) from None


def _network(address: str) -> str:
    return f"{address}/{ipaddress.ip_address(address).max_prefixlen}"


def _next_hop(address: str, port: int = 25) -> str:
    return f"[{address}]:{port}"


def _url_host(address: str) -> str:
    return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address


def _port(hostvars: Mapping[str, Any], host: str, spec: tuple[str | None, int]) -> int:
    variable, default = spec
    if variable is None:
        return default
    try:
        value = hostvars[host][variable]
    except KeyError:
        return default
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or not str(value).isascii()
        or not str(value).isdigit()
        or not 0 < int(value) < 65536
    ):
        raise _error(f"host '{host}': {variable} must be a port number (1-65535), got {value!r}")
    return int(value)


def _draining(hostvars: Mapping[str, Any], host: str) -> bool:
    """Whether the host is being drained (mailstack__draining: true): no new mail is routed to it."""
    try:
        value = hostvars[host]["mailstack__draining"]
    except KeyError:
        return False
    if not isinstance(value, bool):
        raise _error(f"host '{host}': mailstack__draining must be true or false, got {value!r}")
    return value


def _active_backend(hostvars: Mapping[str, Any], cores: list[str], shared: bool) -> str | None:
    """The one mailman_core host that runs Mailman (mailstack__active_backend: true).

    One back-end needs no mark. Several back-ends share one copy of Mailman's data (the NFS
    share): exactly one of them may run Mailman, the others are standbys.
    """
    marked = []
    for host in cores:
        value = hostvars.get(host, {}).get("mailstack__active_backend")
        if value is None:
            continue
        if not isinstance(value, bool):
            raise _error(f"host '{host}': mailstack__active_backend must be true or false, got {value!r}")
        if value:
            marked.append(host)
    if len(marked) > 1:
        raise _error(
            f"two or more active back-ends on one share: {', '.join(marked)} all have "
            "mailstack__active_backend: true; two Mailman cores on the same queues lose and duplicate "
            "messages; mark exactly one (playbooks/failover.yml moves the active role)"
        )
    if len(cores) <= 1:
        return cores[0] if cores else None
    if not shared:
        raise _error(
            f"the mailman_core group has {len(cores)} hosts ({', '.join(cores)}) but no nfs_server host: "
            "standby back-ends need Mailman's data on the shared storage; add an nfs_server host"
        )
    if not marked:
        raise _error(
            f"the mailman_core group has {len(cores)} hosts ({', '.join(cores)}): set "
            "mailstack__active_backend: true on the one that runs Mailman (the others are standbys)"
        )
    return marked[0]


def _host_layers(hostvars: Mapping[str, Any], host: str, variables: Sequence[str]) -> list[tuple[str, Any]]:
    """A host's layers of one variable family (role defaults are not in hostvars: missing is empty)."""
    return [(variable, hostvars[host].get(variable)) for variable in variables]


def _domains(hostvars: Mapping[str, Any], host: str) -> list[str]:
    """The present mail domains of one back-end: its domain layers merged by name."""
    layers = ("mailman_core__domains", "mailman_core__group_domains", "mailman_core__host_domains")
    merged = merge_layers(
        _host_layers(hostvars, host, layers),
        where=_WHERE.at(f"host '{host}'"),
        key=by_name(casefold=True, name_format="domain"),
    )
    return [str(entry.key) for entry in merged if entry.state == "present"]


def _check_lists(hostvars: Mapping[str, Any], host: str, domains: list[str]) -> None:
    """Every present list of a back-end is in one of the domains it serves (else the MX refuses its mail)."""
    layers = ("mailman_core__lists", "mailman_core__group_lists", "mailman_core__host_lists")
    merged = merge_layers(
        _host_layers(hostvars, host, layers),
        where=_WHERE.at(f"host '{host}'"),
        key=by_name(casefold=True, name_format="address"),
    )
    for entry in merged:
        domain = str(entry.key).rpartition("@")[2]
        if entry.state == "present" and domain not in domains:
            raise _error(
                f"host '{host}': {entry.source} '{entry.key}' is in domain '{domain}', which is not "
                f"one of its mailman_core__domains ({', '.join(domains) or 'none'}): the MX nodes "
                "would refuse its mail; add the domain or fix the list name"
            )


def topology(groups: Mapping[str, Any], hostvars: Mapping[str, Any]) -> dict[str, Any]:
    """Return the cluster's topology (see topology.yml for the keys)."""
    if not isinstance(groups, Mapping):
        raise _error(f"input must be the inventory's groups (a mapping), got {type(groups).__name__}")
    if not isinstance(hostvars, Mapping):
        raise _error(f"hostvars must be a mapping of host to variables, got {type(hostvars).__name__}")

    members = {group: _hosts(groups, group) for group in TIER_GROUPS}
    addresses = {group: [_address(hostvars, host) for host in hosts] for group, hosts in members.items()}
    single_server = not members["mx"]

    list_domains: list[str] = []
    for host in members["mailman_core"]:
        domains = _domains(hostvars, host)
        _check_lists(hostvars, host, domains)
        for domain in domains:
            if domain not in list_domains:
                list_domains.append(domain)

    # No two services of one host on one port.
    for host in dict.fromkeys(h for hosts in members.values() for h in hosts):
        used: dict[int, str] = {}
        kinds = [g for g in LISTENERS if host in members.get(g, [])]
        if single_server and host in members["mailman_core"]:
            kinds.append("scanning")
        for kind in kinds:
            for spec in LISTENERS[kind]:
                port = _port(hostvars, host, spec)
                what = spec[0] or f"{kind} port {port}"
                if port in used and used[port] != what:
                    raise _error(f"host '{host}': port {port} of {what} is already used by {used[port]}")
                used[port] = what

    # Relays being drained (mailstack__draining, set by playbooks/remove-node.yml or the inventory)
    # get no new mail; draining every relay would leave postfix-out with nowhere to send.
    draining = {group: [h for h in hosts if _draining(hostvars, h)] for group, hosts in members.items()}
    serving_relays = [h for h in members["relays"] if h not in draining["relays"]]
    if members["relays"] and not serving_relays:
        raise _error(
            f"every relay is draining ({', '.join(draining['relays'])}): postfix-out would have no "
            "next hop; add a relay before removing the last one"
        )

    # One back-end runs Mailman; the others (standbys) share its data and receive nothing.
    active = _active_backend(hostvars, members["mailman_core"], bool(members["nfs_server"]))
    standbys = [h for h in members["mailman_core"] if h != active]
    # The web front-ends are reached through the proxy only (TLS, static files, failover): the
    # back-ends reach HyperKitty's archiver API and Postorius' templates on its internal address.
    if members["mailman_web"] and not members["proxy"]:
        raise _error(
            f"the mailman_web hosts ({', '.join(members['mailman_web'])}) need a proxy host: "
            "users and the back-ends reach them through it"
        )

    # Who may send into each Postfix tier without further checks (its mynetworks).
    mynetworks = {
        "mailman_core": [LOOPBACK_NETWORK, *addresses["mx"]],
        # The back-ends (postfix-out) and the web front-ends (their loopback Postfix), each once.
        "relays": [LOOPBACK_NETWORK, *dict.fromkeys([*addresses["mailman_core"], *addresses["mailman_web"]])],
    }

    # Every host's inbound rules: the union over the groups it is in, in INGRESS order.
    ingress: dict[str, list[dict[str, Any]]] = {}
    for group, name, port_spec, proto, source_groups in INGRESS:
        for host in members[group]:
            if source_groups is None or (group == "mailman_core" and name == "smtp" and single_server):
                sources: list[str] | str = "any"
                source_names = "anyone"
            else:
                sources = [_network(a) for g in source_groups for a in addresses[g]]
                source_names = ", ".join(source_groups)
            if source_groups is not None and not sources and not single_server:
                continue  # no peer has hosts (e.g. no mailman_web yet): the port stays closed
            ingress.setdefault(host, []).append(
                {
                    "name": f"{group}-{name}",
                    "ports": [_port(hostvars, host, port_spec)],
                    "proto": proto,
                    "sources": sources if isinstance(sources, str) else list(dict.fromkeys(sources)),
                    "comment": f"{name} on {group} from {source_names}",
                }
            )

    return {
        "single_server": single_server,
        "groups": members,
        "addresses": addresses,
        "list_domains": list_domains,
        "mynetworks": mynetworks,
        "db_port": _port(hostvars, members["db"][0], ("postgresql__port", 5432)) if members["db"] else 5432,
        "db_clients": [_network(a) for g in DB_CLIENT_GROUPS for a in addresses[g]],
        "backend_active": active,
        "backend_standbys": standbys,
        "backend_next_hops": [_next_hop(_address(hostvars, active))] if active else [],
        # Where the internet hands list mail: the MX nodes, or the active back-end of a single server.
        "inbound_hosts": members["mx"] if not single_server else [active] if active else [],
        "nfs_clients": [_network(a) for a in addresses["mailman_core"]],
        "draining": draining,
        "relay_next_hops": [_next_hop(_address(hostvars, h)) for h in serving_relays],
        "ingress": ingress,
        "web_internal_url": f"http://{_url_host(addresses['proxy'][0])}" if members["proxy"] else "",
        "web_upstreams": [
            f"{_url_host(_address(hostvars, h))}:{_port(hostvars, h, ('mailman_web__uwsgi_port', 8000))}"
            for h in members["mailman_web"]
        ],
        "core_rest_url": (
            f"http://{_url_host(_address(hostvars, active))}:"
            f"{_port(hostvars, active, ('mailman_core__rest_port', 8001))}"
            if active
            else ""
        ),
    }
