# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The site's topology: a pure function of the inventory and the run's inputs.

Every tier's peers, networks, next hops and firewall rules, the active back-end, the relays that
take new mail, the web side's shared services, the share's owner: derived here and nowhere else
(``docs/topology.md``). ``playbooks/topology.yml`` calls it once per run (the filter
``mailstack.site.topology``) and every play reads the result, ``mailstack__topology``. What cannot
be derived is checked here too, so a bad inventory is refused before any host changes, with a
message naming the host, the group or the variable.

Inputs: the inventory's ``groups`` and ``hostvars``, and the run's choices (``run``):
``failover_to`` (the back-end to make active: ``playbooks/failover.yml -e backend=list2``) and
``draining`` (relays to take out of service: ``playbooks/remove-node.yml -e node=relay3``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where, is_list, type_name
from ansible_collections.mailstack.site.plugins.plugin_utils.layers import by_name, merge_layers

# The groups of the inventory contract (README, DESIGN): their hosts take these roles.
TIER_GROUPS = ("mx", "mailman_core", "relays", "db", "nfs_server", "mailman_web", "proxy")
# Each of these runs its own Postfix on port 25: a host is in one of them at most.
POSTFIX_TIERS = ("mx", "mailman_core", "relays")
RUN_INPUTS = ("failover_to", "draining")
ANYONE = "any"

# Cross-host services, the whole ingress policy in one table: the listening group, the rule's
# name, the port (a variable read from the listening host's inventory, else the owning role's
# default: tests/unit/test_mailstack_topology.py keeps each default equal to the role's), the
# protocol, the groups that may connect, and what applies when none of those groups has a host:
# ANYONE, or None (no rule: the port stays closed). Loopback-only services have no entry.
INGRESS = (
    ("mx", "smtp", (None, 25), "tcp", (), ANYONE),
    # Behind MX nodes the back-ends take mail from them only; without (a single server), from anyone.
    ("mailman_core", "smtp", (None, 25), "tcp", ("mx",), ANYONE),
    ("mailman_core", "mailman-rest", ("mailman_core__rest_port", 8001), "tcp", ("mailman_web",), None),
    # The back-ends' postfix-out, and the web nodes' own Postfix (sign-up and password mail).
    ("relays", "smtp", (None, 25), "tcp", ("mailman_core", "mailman_web"), None),
    ("db", "postgresql", ("postgresql__port", 5432), "tcp", ("mailman_core", "mailman_web"), None),
    # NFSv4 (the nfs_server role's default): one TCP port, used by the back-ends only.
    ("nfs_server", "nfs", (None, 2049), "tcp", ("mailman_core",), None),
    ("mailman_web", "uwsgi", ("mailman_web__uwsgi_port", 8000), "tcp", ("proxy",), None),
    ("mailman_web", "memcached", ("mailman_web__memcached_port", 11211), "tcp", ("mailman_web",), None),
    ("proxy", "http", (None, 80), "tcp", (), ANYONE),
    ("proxy", "https", (None, 443), "tcp", (), ANYONE),
)

# Every TCP port the roles open on a host of each group (loopback ones included): two services
# of one host must not share a port. A single-server back-end also runs rspamd ("scanning").
_RSPAMD = (("rspamd__milter_port", 11332), ("rspamd__normal_port", 11333), ("rspamd__controller_port", 11334))
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
    # (A web node's own loopback Postfix on 25 runs only where no other Postfix tier does.)
    "mailman_web": (("mailman_web__uwsgi_port", 8000), ("mailman_web__memcached_port", 11211)),
    "proxy": ((None, 80), (None, 443)),
}

LOOPBACK_NETWORK = "127.0.0.0/8"
# Where the back-ends reach the web side (archiver API, list templates): this name, written in every
# host's /etc/hosts with the address of every proxy, so a client tries the next proxy when one is
# down (the resolver returns all of them; Python's socket.create_connection tries each in turn).
WEB_INTERNAL_NAME = "web.mailstack.internal"
# Mailman's list user on every back-end and the owner of the share (Debian's uid/gid of `list`).
MAILMAN_ID = 38
SHARE_PATH = "/srv/nfs/mailman"
SHARE_MODE = "0775"

_WHERE = Where("topology")


def _error(message: str) -> Exception:
    return _WHERE.error(message)


# --------------------------------------------------------------------------------------------
# Reading the inventory


def _hosts(groups: Mapping[str, Any], group: str) -> list[str]:
    hosts = groups.get(group) or []
    if not is_list(hosts):
        raise _error(f"groups['{group}'] must be a list of host names, got {type_name(hosts)}")
    return list(hosts)


def _var(hostvars: Mapping[str, Any], host: str, name: str, default: Any = None) -> Any:
    try:
        return hostvars[host][name]
    except KeyError:
        return default


def _address(hostvars: Mapping[str, Any], host: str) -> str | None:
    value = _var(hostvars, host, "mailstack__address")
    if value is None:
        return None
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
    value = default if variable is None else _var(hostvars, host, variable, default)
    text = str(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | str)
        or not text.isascii()
        or not text.isdigit()
    ):
        raise _error(f"host '{host}': {variable} must be a port number (1-65535), got {value!r}")
    if not 0 < int(value) < 65536:
        raise _error(f"host '{host}': {variable} must be a port number (1-65535), got {value!r}")
    return int(value)


def _flag(hostvars: Mapping[str, Any], host: str, name: str) -> bool:
    value = _var(hostvars, host, name, False)
    if not isinstance(value, bool):
        raise _error(f"host '{host}': {name} must be true or false, got {value!r}")
    return value


def _host_layers(hostvars: Mapping[str, Any], host: str, variables: Sequence[str]) -> list[tuple[str, Any]]:
    """A host's layers of one variable family (role defaults are not in hostvars: missing is empty)."""
    return [(variable, _var(hostvars, host, variable)) for variable in variables]


def _domains(hostvars: Mapping[str, Any], host: str) -> list[str]:
    """The present mail domains of one back-end: its domain layers merged by name."""
    layers = ("mailman_core__domains", "mailman_core__group_domains", "mailman_core__host_domains")
    merged = merge_layers(
        _host_layers(hostvars, host, layers),
        where=_WHERE.at(f"host '{host}'"),
        key=by_name(casefold=True, name_format="domain"),
    )
    return [str(entry.key) for entry in merged if entry.state == "present"]


def _check_admin_networks(hostvars: Mapping[str, Any], host: str) -> None:
    """The networks SSH is admitted from are the inventory's word, never a default."""
    networks = _var(hostvars, host, "mailstack__admin_networks")
    if networks is None:
        raise _error(
            f"host '{host}': mailstack__admin_networks is not set: give the networks SSH is admitted from "
            "(your management networks or bastion, e.g. ['192.0.2.0/28']), in the inventory's "
            "group_vars/all (see inventories/production-sample); the firewall admits SSH from nowhere else, "
            "not even from the controller unless firewall__admin_allow_controller is true"
        )
    if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
        raise _error(
            f"host '{host}': mailstack__admin_networks must be a list of addresses or networks, "
            f"got {networks!r}"
        )
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError:
            raise _error(
                f"host '{host}': mailstack__admin_networks: {network!r} is not an address or network"
            ) from None


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


def _same_everywhere(hostvars: Mapping[str, Any], hosts: list[str], name: str, default: Any) -> Any:
    """A value the hosts of a tier must agree on (they share files): the one value, else refused."""
    values = {host: _var(hostvars, host, name, default) for host in hosts}
    distinct = {repr(value) for value in values.values()}
    if len(distinct) > 1:
        shown = ", ".join(f"{host}: {value!r}" for host, value in values.items())
        raise _error(f"{name} differs between the hosts that share Mailman's data ({shown}): give it once")
    return next(iter(values.values()), default)


# --------------------------------------------------------------------------------------------
# The run's inputs and the inventory's contract


def _run_inputs(run: Any) -> tuple[str, list[str]]:
    if run is None:
        run = {}
    if not isinstance(run, Mapping):
        raise _error(f"run must be a mapping of {', '.join(RUN_INPUTS)}, got {type_name(run)}")
    unknown = sorted(str(key) for key in run if key not in RUN_INPUTS)
    if unknown:
        raise _error(f"run: unknown input(s) {', '.join(unknown)}; expected {', '.join(RUN_INPUTS)}")
    failover_to = run.get("failover_to") or ""
    draining = run.get("draining") or []
    if isinstance(draining, str):
        draining = [name.strip() for name in draining.split(",")]
    if not isinstance(failover_to, str) or not is_list(draining):
        raise _error(f"run: failover_to is a host name and draining a list of hosts, got {dict(run)!r}")
    return failover_to, [name for name in draining if name]


def _check_groups(members: Mapping[str, list[str]]) -> None:
    for pos, first in enumerate(POSTFIX_TIERS):
        for second in POSTFIX_TIERS[pos + 1 :]:
            both = [host for host in members[first] if host in members[second]]
            if both:
                raise _error(
                    f"hosts {', '.join(both)} are in both the {first} and the {second} group; each group "
                    "runs its own Postfix profile on port 25"
                )
    if len(members["db"]) > 1:
        raise _error(
            f"the db group has {len(members['db'])} hosts ({', '.join(members['db'])}); mailstack manages one"
        )
    if members["mx"] and not members["mailman_core"]:
        raise _error(
            "the mx group has hosts but the mailman_core group is empty: the MX nodes pass mail to it"
        )
    # The web front-ends are reached through the proxy only (TLS, static files, failover): the
    # back-ends reach HyperKitty's archiver API and Postorius' templates through it too.
    if members["mailman_web"] and not members["proxy"]:
        raise _error(
            f"the mailman_web hosts ({', '.join(members['mailman_web'])}) need a proxy host: "
            "users and the back-ends reach them through it"
        )


def _active_backend(
    hostvars: Mapping[str, Any], cores: list[str], shared: bool, failover_to: str
) -> str | None:
    """The one mailman_core host that runs Mailman: the run's failover target, else the inventory's mark.

    One back-end needs no mark. Several back-ends share one copy of Mailman's data (the NFS
    share): exactly one of them may run Mailman, the others are standbys.
    """
    if failover_to:
        if failover_to not in cores:
            raise _error(
                f"failover to '{failover_to}': not a mailman_core host of this inventory "
                f"({', '.join(cores) or 'none'})"
            )
        if not shared or len(cores) < 2:
            raise _error(
                f"failover to '{failover_to}': the back-ends share no data (no nfs_server host, or one "
                "back-end): a standby has nothing to take over"
            )
        return failover_to
    marked = [host for host in cores if _flag(hostvars, host, "mailstack__active_backend")]
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


def _draining_relays(hostvars: Mapping[str, Any], relays: list[str], asked: list[str]) -> list[str]:
    """Relays taken out of service: the run's (remove-node.yml) and the inventory's mailstack__draining."""
    unknown = [host for host in asked if host not in relays]
    if unknown:
        raise _error(
            f"draining {', '.join(unknown)}: not relays of this inventory ({', '.join(relays) or 'none'})"
        )
    draining = [host for host in relays if host in asked or _flag(hostvars, host, "mailstack__draining")]
    if relays and len(draining) == len(relays):
        raise _error(
            f"every relay is draining ({', '.join(draining)}): postfix-out would have no "
            "next hop; add a relay before removing the last one (playbooks/scale.yml)"
        )
    return draining


def _check_ports(hostvars: Mapping[str, Any], members: Mapping[str, list[str]], single_server: bool) -> None:
    """No two services of one host on one port."""
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


# --------------------------------------------------------------------------------------------
# Derivations


def _ingress(
    hostvars: Mapping[str, Any], members: Mapping[str, list[str]], addresses: Mapping[str, list[str]]
) -> dict[str, list[dict[str, Any]]]:
    """Every host's inbound rules: the union over the groups it is in, in INGRESS order."""
    ingress: dict[str, list[dict[str, Any]]] = {}
    for group, name, port_spec, proto, source_groups, fallback in INGRESS:
        networks = list(dict.fromkeys(_network(a) for g in source_groups for a in addresses[g]))
        if networks:
            sources: list[str] | str = networks
            source_names = ", ".join(source_groups)
        elif fallback == ANYONE:
            sources, source_names = ANYONE, "anyone"
        else:
            continue  # no peer has a host (e.g. no mailman_web yet): no rule, the port stays closed
        for host in members[group]:
            ingress.setdefault(host, []).append(
                {
                    "name": f"{group}-{name}",
                    "ports": [_port(hostvars, host, port_spec)],
                    "proto": proto,
                    "sources": sources,
                    "comment": f"{name} on {group} from {source_names}",
                }
            )
    return ingress


def _web(
    hostvars: Mapping[str, Any], members: Mapping[str, list[str]], address: Mapping[str, str]
) -> dict[str, Any]:
    """The web side: the proxy's upstreams, the internal name of every proxy, the shared services' host."""
    nodes, proxies = members["mailman_web"], members["proxy"]
    first = nodes[0] if nodes else None
    return {
        "web_upstreams": [
            f"{_url_host(address[h])}:{_port(hostvars, h, ('mailman_web__uwsgi_port', 8000))}" for h in nodes
        ],
        # One node runs the task cluster and the periodic jobs, migrates the database and holds the
        # shared memcached (the others connect to it).
        "web_tasks_host": first,
        "web_memcached": (
            {
                "host": first,
                "address": address[first],
                "port": _port(hostvars, first, ("mailman_web__memcached_port", 11211)),
            }
            if first
            else {}
        ),
        "web_internal_name": WEB_INTERNAL_NAME if proxies else "",
        "web_internal_url": f"http://{WEB_INTERNAL_NAME}" if proxies else "",
        "web_internal_hosts": [{"address": address[p], "names": [WEB_INTERNAL_NAME]} for p in proxies],
    }


def _rest_url(hostvars: Mapping[str, Any], active: str | None, address: Mapping[str, str]) -> str:
    """The active back-end's REST API, which the web front-ends use (empty without a back-end)."""
    if not active:
        return ""
    return f"http://{_url_host(address[active])}:{_port(hostvars, active, ('mailman_core__rest_port', 8001))}"


def _share(hostvars: Mapping[str, Any], cores: list[str], nfs: list[str]) -> dict[str, Any]:
    """Mailman's shared data: the export on the nfs_server host, mounted at every back-end's var dir.

    Owned by Mailman's list user as every back-end sets it (the back-ends share the files: their
    mailman_core__uid/gid must agree) and group-writable; the same directory for the export and the
    mount, so neither play undoes the other.
    """
    return {
        "path": _same_everywhere(hostvars, nfs, "mailstack__mailman_share_path", SHARE_PATH),
        "owner": _same_everywhere(hostvars, cores, "mailman_core__uid", MAILMAN_ID),
        "group": _same_everywhere(hostvars, cores, "mailman_core__gid", MAILMAN_ID),
        "mode": SHARE_MODE,
    }


def topology(groups: Mapping[str, Any], hostvars: Mapping[str, Any], run: Any = None) -> dict[str, Any]:
    """Return the site's topology (see topology.yml beside the filter for the keys)."""
    if not isinstance(groups, Mapping):
        raise _error(f"input must be the inventory's groups (a mapping), got {type_name(groups)}")
    if not isinstance(hostvars, Mapping):
        raise _error(f"hostvars must be a mapping of host to variables, got {type_name(hostvars)}")
    failover_to, asked_draining = _run_inputs(run)

    members = {group: _hosts(groups, group) for group in TIER_GROUPS}
    every_host = list(
        dict.fromkeys([*_hosts(groups, "all"), *(h for hosts in members.values() for h in hosts)])
    )
    address: dict[str, str] = {}
    for host in every_host:
        value = _address(hostvars, host)
        if value is not None:
            address[host] = value
    for host in dict.fromkeys(h for hosts in members.values() for h in hosts):
        if host not in address:
            raise _error(
                f"host '{host}' has no mailstack__address (its internal address, set in the inventory)"
            )
        if _var(hostvars, host, "mailstack__secret_dir") in (None, ""):
            raise _error(
                f"host '{host}': mailstack__secret_dir is not set: give the controller directory where "
                "generated secrets are kept, outside the inventory directory (Ansible reads every file there "
                "as inventory), in the inventory's group_vars/all (see inventories/production-sample)"
            )
        _check_admin_networks(hostvars, host)
    seen: dict[str, str] = {}
    for host, value in address.items():
        if value in seen:
            raise _error(f"hosts '{seen[value]}' and '{host}' have the same mailstack__address {value}")
        seen[value] = host
    addresses = {group: [address[h] for h in hosts] for group, hosts in members.items()}
    _check_groups(members)
    single_server = not members["mx"]

    list_domains: list[str] = []
    for host in members["mailman_core"]:
        domains = _domains(hostvars, host)
        _check_lists(hostvars, host, domains)
        list_domains.extend(domain for domain in domains if domain not in list_domains)
    if members["mailman_core"] and not list_domains:
        raise _error(
            f"the list back-ends ({', '.join(members['mailman_core'])}) serve no mail domain: give them "
            "mailman_core__domains (the MX nodes accept mail for those domains only)"
        )
    _check_ports(hostvars, members, single_server)

    draining = _draining_relays(hostvars, members["relays"], asked_draining)
    serving_relays = [h for h in members["relays"] if h not in draining]
    # One back-end runs Mailman; the others (standbys) share its data and receive nothing.
    active = _active_backend(hostvars, members["mailman_core"], bool(members["nfs_server"]), failover_to)
    standbys = [h for h in members["mailman_core"] if h != active]
    # The web nodes send their mail (sign-up, password reset) through their own loopback Postfix,
    # unless they run another Postfix tier, whose instance takes it.
    web_postfix = [h for h in members["mailman_web"] if not any(h in members[t] for t in POSTFIX_TIERS)]

    return {
        "single_server": single_server,
        "groups": members,
        "address": address,
        "addresses": addresses,
        "list_domains": list_domains,
        "mynetworks": {
            "mailman_core": [LOOPBACK_NETWORK, *addresses["mx"]],
            # The back-ends (postfix-out) and the web front-ends (their loopback Postfix), each once.
            "relays": [
                LOOPBACK_NETWORK,
                *dict.fromkeys([*addresses["mailman_core"], *addresses["mailman_web"]]),
            ],
        },
        # The relays' signing networks (loopback and the back-ends), and the clients refused any
        # sender in a list domain (the web front-ends that are not back-ends too).
        "relay_signing_networks": [LOOPBACK_NETWORK, *dict.fromkeys(addresses["mailman_core"])],
        "relay_list_sender_refused": [
            a for a in dict.fromkeys(addresses["mailman_web"]) if a not in addresses["mailman_core"]
        ],
        "db_host": addresses["db"][0] if members["db"] else "",
        "db_port": _port(hostvars, members["db"][0], ("postgresql__port", 5432)) if members["db"] else 5432,
        "db_clients": [_network(a) for g in ("mailman_core", "mailman_web") for a in addresses[g]],
        "backend_active": active,
        "backend_standbys": standbys,
        "backend_takeover": bool(failover_to),
        "backend_next_hops": [_next_hop(address[active])] if active else [],
        # Where the internet hands list mail: the MX nodes, or the active back-end of a single server.
        "inbound_hosts": members["mx"] if not single_server else [active] if active else [],
        "core_rest_url": _rest_url(hostvars, active, address),
        # Where Mailman's REST API listens: the internal address when web nodes use it, else loopback.
        "core_rest_host": {
            h: address[h] if members["mailman_web"] else "127.0.0.1" for h in members["mailman_core"]
        },
        "share": _share(hostvars, members["mailman_core"], members["nfs_server"]),
        "nfs_server": addresses["nfs_server"][0] if members["nfs_server"] else "",
        "nfs_clients": [_network(a) for a in addresses["mailman_core"]],
        # Each back-end's entry of nfs_clients (playbooks/failover.yml narrows the export with it).
        "nfs_client_of": {h: _network(address[h]) for h in members["mailman_core"]},
        "draining": {"relays": draining},
        "relay_next_hops": [_next_hop(address[h]) for h in serving_relays],
        # The relay that adopts the queues of the draining ones (playbooks/remove-node.yml).
        "relay_heir": serving_relays[0] if serving_relays else "",
        # Every Postfix that sends through the relays: postfix-out of each back-end, the web nodes' own.
        "relay_clients": [*members["mailman_core"], *web_postfix],
        "web_postfix_hosts": web_postfix,
        **_web(hostvars, members, address),
        "ingress": _ingress(hostvars, members, addresses),
        "secret_dirs": list(
            dict.fromkeys(
                _var(hostvars, h, "mailstack__secret_dir")
                for h in address
                if _var(hostvars, h, "mailstack__secret_dir")
            )
        ),
    }
