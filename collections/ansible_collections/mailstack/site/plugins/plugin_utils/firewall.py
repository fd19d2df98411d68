# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host firewall as data: merge rule layers and render the nftables ruleset of roles/firewall.

The filters firewall_merge_rules and firewall_nftables (plugins/filter/) are thin wrappers of this
module; their documentation is beside them.

Rule, as written in a layer::

    {name, ports, proto, sources, comment, state}

Canonical rule (what ``firewall_merge_rules`` returns)::

    {name, proto, ports: [str], sources: [str], comment}

``ports`` are sorted, merged port numbers and ranges (``'25'``, ``'8000-8010'``); ``sources`` are
collapsed networks, IPv4 first (``'192.0.2.0/24'``, ``'2001:db8::1/128'``), or the word ``any``
(every address). ``sources`` is required: an empty list admits nobody, and the rule then renders
as a comment only, so a rule whose peers are all gone never opens its port to the world.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where, is_list, type_name
from ansible_collections.mailstack.site.plugins.plugin_utils.layers import layer_names, merge_layers

Rule = dict[str, Any]
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# The layers of roles/firewall, in merge order (later layers win).  vars/main.yml of the role
# passes them in this order and names them in error messages.
LAYERS = ("firewall__rules", "firewall__dependent_rules", "firewall__group_rules", "firewall__host_rules")
RULE_FIELDS = ("name", "ports", "proto", "sources", "comment", "state")
PROTOS = ("tcp", "udp")
ANY = "any"  # sources: every address
PORT_MIN = 1
PORT_MAX = 65535
COMMENT_MAX = 128  # nftables limits a rule comment to 128 bytes

# ICMP that IPv4 and IPv6 need: echo and the error messages; for IPv6 also neighbour and router
# discovery and multicast listener discovery (without them IPv6 stops working on the link).
ICMP_TYPES = ("echo-request", "destination-unreachable", "time-exceeded", "parameter-problem")
ICMPV6_TYPES = (
    "echo-request",
    "destination-unreachable",
    "packet-too-big",
    "time-exceeded",
    "parameter-problem",
    "nd-router-solicit",
    "nd-router-advert",
    "nd-neighbor-solicit",
    "nd-neighbor-advert",
    "mld-listener-query",
    "mld-listener-report",
    "mld-listener-done",
    "mld2-listener-report",
)

_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
_NFT_IDENT = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,31}")
_PORT_RANGE = re.compile(r"\s*(\d+)\s*-\s*(\d+)\s*")
_LOG_RATE = re.compile(r"[1-9]\d{0,5}/(second|minute|hour|day)")
_LOG_PREFIX = re.compile(r"[A-Za-z0-9 _.:=-]{1,40}")


# --------------------------------------------------------------------------------------------
# Field checks (each returns the canonical value or raises)


def _check_ports(where: Where, ports: Any) -> list[str]:
    """Port numbers and ranges -> sorted, merged ``['25', '8000-8010']``."""
    if ports is None:
        raise where.error("ports is required (a port, a range 'LOW-HIGH' or a list of them)")
    items = list(ports) if is_list(ports) else [ports]
    if not items:
        raise where.error("ports is an empty list; give at least one port, or state: absent")
    spans: list[tuple[int, int]] = []
    for item in items:
        if isinstance(item, bool):
            raise where.error(f"ports: {item!r} is not a port (give an integer 1-65535 or 'LOW-HIGH')")
        if isinstance(item, int):
            low = high = item
        elif isinstance(item, str) and item.strip().isdigit():
            low = high = int(item)
        elif isinstance(item, str) and (match := _PORT_RANGE.fullmatch(item)):
            low, high = int(match.group(1)), int(match.group(2))
            if low > high:
                raise where.error(f"ports: range {item!r} runs backwards (LOW-HIGH with LOW <= HIGH)")
        else:
            raise where.error(f"ports: {item!r} is not a port (give an integer 1-65535 or 'LOW-HIGH')")
        for port in (low, high):
            if not PORT_MIN <= port <= PORT_MAX:
                raise where.error(f"ports: {port} is out of range {PORT_MIN}-{PORT_MAX} (in {item!r})")
        spans.append((low, high))
    merged: list[list[int]] = []
    for low, high in sorted(spans):
        if merged and low <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], high)
        else:
            merged.append([low, high])
    return [str(low) if low == high else f"{low}-{high}" for low, high in merged]


def _network(where: Where, field: str, item: Any) -> Network:
    if not isinstance(item, str) or not item.strip():
        raise where.error(f"{field}: {item!r} is not an IPv4/IPv6 address or network")
    text = item.strip()
    try:
        net = ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "has host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            raise where.error(f"{field}: {text!r} has host bits set (did you mean {str(fixed)!r}?)") from None
        raise where.error(f"{field}: {text!r} is not an IPv4/IPv6 address or network") from None
    if isinstance(net, ipaddress.IPv6Network) and net.prefixlen >= 96 and net.network_address.ipv4_mapped:
        mapped = net.network_address.ipv4_mapped
        return ipaddress.IPv4Network(f"{mapped}/{net.prefixlen - 96}")
    return net


def _check_sources(where: Where, sources: Any, field: str = "sources") -> list[str]:
    """Addresses and networks -> collapsed networks, IPv4 first, as strings."""
    if sources is None:
        return []
    if not is_list(sources):
        raise where.error(f"{field} must be a list of addresses or networks, got {type_name(sources)}")
    nets = [_network(where, field, item) for item in sources]
    v4 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv4Network))
    v6 = ipaddress.collapse_addresses(n for n in nets if isinstance(n, ipaddress.IPv6Network))
    return [str(n) for n in v4] + [str(n) for n in v6]


def _rule_sources(where: Where, sources: Any) -> list[str] | str:
    """A rule's sources: 'any', or a list (empty: nobody). Required: an open port is never implied."""
    if sources is None:
        raise where.error(
            "sources is required: a list of addresses or networks (empty: nobody), or 'any' for every address"
        )
    if sources == ANY:
        return ANY
    if isinstance(sources, str):
        raise where.error(f"sources must be a list of addresses or networks, or 'any', got {sources!r}")
    return _check_sources(where, sources)


def _check_comment(where: Where, comment: Any, default: str) -> str:
    if comment is None or comment == "":
        return default
    if not isinstance(comment, str):
        raise where.error(f"comment must be a string, got {type_name(comment)}")
    if '"' in comment or "\\" in comment or any(ord(ch) < 32 for ch in comment):
        raise where.error(
            f"comment must not contain quotes, backslashes or control characters, got {comment!r}"
        )
    if len(comment.encode()) > COMMENT_MAX:
        raise where.error(f"comment is longer than {COMMENT_MAX} bytes (nftables' limit)")
    return comment


def _rule_name(where: Where, entry: Any) -> str:
    if not isinstance(entry, Mapping):
        raise where.error(f"a rule must be a mapping, got {type_name(entry)} {entry!r}")
    name = entry.get("name")
    if not isinstance(name, str) or not _RULE_NAME.fullmatch(name):
        raise where.error(
            "name is required: letters, digits, '_', '.', '-' "
            f"(at most 63, starting with a letter or digit), got {name!r}"
        )
    return name


def _normalize_rule(where: Where, entry: Mapping[str, Any]) -> Rule:
    """A merged rule -> canonical form (``state`` already handled by the merge)."""
    unknown = sorted(str(key) for key in entry if key not in RULE_FIELDS)
    if unknown:
        raise where.error(f"unknown field(s) {', '.join(unknown)} (known: {', '.join(RULE_FIELDS)})")
    proto = entry.get("proto", "tcp")
    if proto is None:
        proto = "tcp"
    if proto not in PROTOS:
        raise where.error(f"proto must be one of {'|'.join(PROTOS)}, got {proto!r}")
    name = str(entry["name"])
    return {
        "name": name,
        "proto": str(proto),
        "ports": _check_ports(where, entry.get("ports")),
        "sources": _rule_sources(where, entry.get("sources")),
        "comment": _check_comment(where, entry.get("comment"), name),
    }


# --------------------------------------------------------------------------------------------
# Merging


def firewall_merge_rules(layers: Any, names: Any = None) -> list[Rule]:
    """Merge layers of firewall rules by name (the merge engine's rules, plugin_utils/layers.py);
    return the canonical present rules."""
    where = Where("firewall_merge_rules")
    if layers is None:
        layers = []
    named = layer_names(where, layers, names)

    def where_of(label: str, index: int | None) -> Where:
        return where.at(label, None if index is None else f"item {index}")

    def key(here: Where, entry: Any) -> str:
        return _rule_name(here, entry)

    merged = merge_layers(named, where_of=where_of, key=key)
    result = []
    for entry in merged:
        if entry.state == "present":
            # Named after the layer that changed the rule last (where to look for the bad field).
            label = entry.contributions[-1][0].rpartition("[")[0]
            result.append(_normalize_rule(where.at(label, f"rule {entry.key!r}"), entry.fields))
    return result


# --------------------------------------------------------------------------------------------
# Rendering


def _split(sources: list[str]) -> tuple[list[str], list[str]]:
    v4 = [s for s in sources if ":" not in s]
    v6 = [s for s in sources if ":" in s]
    return v4, v6


def _short(net: str) -> str:
    """``192.0.2.1/32`` -> ``192.0.2.1``: nft prints single addresses without a prefix."""
    address, _, prefix = net.partition("/")
    full = "128" if ":" in address else "32"
    return address if prefix in ("", full) else net


def _set(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "{ " + ", ".join(items) + " }"


def _accept_lines(match: str, sources: list[str] | str, comment: str) -> list[str]:
    """One line per address family with sources, one line without a source match for 'any'."""
    tail = f'counter accept comment "{comment}"'
    if sources == ANY:
        return [f"{match} {tail}"]
    v4, v6 = _split(list(sources))
    lines = []
    if v4:
        lines.append(f"ip saddr {_set([_short(s) for s in v4])} {match} {tail}")
    if v6:
        lines.append(f"ip6 saddr {_set([_short(s) for s in v6])} {match} {tail}")
    return lines


def _sources_text(sources: list[str] | str) -> str:
    if sources == ANY:
        return "anywhere"
    return ", ".join(sources) or "nobody (no source: the port stays closed)"


def _check_options(
    where: Where, table: Any, ssh_ports: Any, log_rate: Any, log_prefix: Any
) -> tuple[str, list[str], str, str]:
    if not isinstance(table, str) or not _NFT_IDENT.fullmatch(table):
        raise where.error(f"table must be an identifier ([A-Za-z][A-Za-z0-9_]*, at most 32), got {table!r}")
    ssh = _check_ports(where.at("firewall__ssh_ports"), ssh_ports) if ssh_ports not in (None, []) else []
    if log_rate in (None, "", False):
        rate = ""
    elif isinstance(log_rate, str) and _LOG_RATE.fullmatch(log_rate):
        rate = log_rate
    else:
        raise where.at("firewall__log_rate").error(
            f"must be N/second|minute|hour|day (or empty for no log), got {log_rate!r}"
        )
    if not isinstance(log_prefix, str) or not _LOG_PREFIX.fullmatch(log_prefix):
        raise where.at("firewall__log_prefix").error(
            f"must be 1-40 characters of letters, digits, space and _.:=-, got {log_prefix!r}"
        )
    return table, ssh, rate, log_prefix


def _check_raw_rules(where: Where, raw_rules: Any) -> list[str]:
    if raw_rules is None:
        return []
    if not is_list(raw_rules):
        raise where.error(f"must be a list of strings (one nft rule each), got {type_name(raw_rules)}")
    result = []
    for index, line in enumerate(raw_rules):
        if not isinstance(line, str) or not line.strip() or "\n" in line or "\r" in line:
            raise where.error(f"item {index} must be one non-empty line of nft rule text, got {line!r}")
        result.append(line.strip())
    return result


def firewall_nftables(
    rules: Any,
    admin_networks: Any = None,
    *,
    ssh_ports: Any = (22,),
    table: str = "mailstack",
    log_rate: Any = "10/minute",
    log_prefix: str = "mailstack refused: ",
    controller: Any = None,
    raw_rules: Any = None,
) -> str:
    """Render the complete nftables ruleset of the role's own table (see firewall_nftables.yml)."""
    where = Where("firewall_nftables")
    table, ssh, rate, prefix = _check_options(where, table, ssh_ports, log_rate, log_prefix)
    admin_where = where.at("firewall__admin_networks")
    admin = _check_sources(admin_where, admin_networks, field="entry")
    if controller not in (None, ""):
        admin = _check_sources(admin_where, [*admin, str(controller)], field="controller address")
    if ssh and not admin:
        raise admin_where.error(
            "is empty and the controller's address is unknown: SSH would be closed to everyone "
            "(set firewall__ssh_ports: [] to close SSH on purpose)"
        )
    raw = _check_raw_rules(where.at("firewall__raw_rules"), raw_rules)
    if rules is None:
        rules = []
    if not is_list(rules):
        raise where.error(f"rules must be a list, got {type_name(rules)}")
    canonical = []
    seen: set[str] = set()
    for index, entry in enumerate(rules):
        name = _rule_name(where.at(None, f"item {index}"), entry)
        here = where.at(None, f"rule {name!r}")
        if name in seen:
            raise here.error("duplicate name (merge the layers with firewall_merge_rules first)")
        seen.add(name)
        if entry.get("state", "present") != "present":
            raise here.error(
                "state must be 'present' here (merge the layers with firewall_merge_rules first)"
            )
        canonical.append(_normalize_rule(here, {k: v for k, v in entry.items() if k != "state"}))

    body = [
        "# Evaluated first, so that no rule below can cut the administrators off.",
        *(_accept_lines(f"tcp dport {_set(ssh)}", admin, "ssh from firewall__admin_networks") if ssh else []),
        'iif "lo" accept',
        "ct state established,related accept",
        "ct state invalid drop",
        f"icmp type {{ {', '.join(ICMP_TYPES)} }} accept",
        f"icmpv6 type {{ {', '.join(ICMPV6_TYPES)} }} accept",
    ]
    for rule in canonical:
        body.append("")
        body.append(
            f"# {rule['name']}: {rule['proto']} {', '.join(rule['ports'])} from "
            f"{_sources_text(rule['sources'])}"
        )
        match = f"{rule['proto']} dport {_set(rule['ports'])}"
        body.extend(_accept_lines(match, rule["sources"], rule["comment"]))
    if raw:
        body.extend(["", "# firewall__raw_rules (checked by nft -c only)", *raw])
    body.append("")
    body.append(
        "# Everything else is refused: counted (nft list counter inet "
        f"{table} refused){', logged at most ' + rate if rate else ''}, then dropped."
    )
    if rate:
        body.append(f'limit rate {rate} burst 5 packets log prefix "{prefix}" level info')
    body.append('counter name "refused" drop')

    lines = [
        f"# The table inet {table} belongs to roles/firewall: loading this file replaces it in one",
        "# transaction (create it if missing, delete it, define it again) and touches no other table.",
        f"table inet {table}",
        f"delete table inet {table}",
        f"table inet {table} {{",
        "\tcounter refused {",
        "\t}",
        "",
        "\tchain input {",
        "\t\ttype filter hook input priority filter; policy drop;",
        *[f"\t\t{line}" if line else "" for line in body],
        "\t}",
        "}",
    ]
    return "\n".join(lines) + "\n"
