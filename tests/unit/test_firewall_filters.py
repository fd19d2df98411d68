"""Unit tests of plugin_utils/firewall.py: merging by name, canonical fields, rendering, errors."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
from ansible_collections.mailstack.site.plugins.plugin_utils import firewall
from support.paths import ROOT

ROLE = ROOT / "roles" / "firewall"
LAYERS = ["firewall__rules", "firewall__dependent_rules", "firewall__group_rules", "firewall__host_rules"]
ADMIN = ["10.0.0.0/8"]


@pytest.fixture(scope="module")
def fw() -> ModuleType:
    return firewall


NAME_RULE = "name is required: letters, digits, '_', '.', '-' (at most 63, starting with a letter or digit), "


def raises(message: str) -> Any:
    return pytest.raises(AnsibleFilterError, match=f"^{re.escape(message)}$")


def merge(fw: ModuleType, *layers: Any) -> list[dict[str, Any]]:
    padded = list(layers) + [[]] * (len(LAYERS) - len(layers))
    return fw.firewall_merge_rules(padded, LAYERS)


def rule(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "smtp",
        "proto": "tcp",
        "ports": ["25"],
        "sources": "any",
        "comment": "smtp",
    }
    base.update(fields)
    return base


def chain(text: str) -> list[str]:
    """The rule lines of the input chain (comments and blank lines left out)."""
    lines = [line.strip() for line in text.splitlines()]
    start = lines.index("type filter hook input priority filter; policy drop;") + 1
    end = len(lines) - 1 - lines[::-1].index("}") - 1  # the chain's closing brace
    return [line for line in lines[start:end] if line and not line.startswith("#")]


# ------------------------------------------------------------------------------------------------
# Merging


def test_merge_canonical_defaults(fw: ModuleType) -> None:
    assert merge(fw, [{"name": "smtp", "ports": 25, "sources": "any"}]) == [rule()]


def test_merge_later_layer_wins_field_by_field(fw: ModuleType) -> None:
    result = merge(
        fw,
        [{"name": "smtp", "ports": 25, "comment": "mail"}],
        [{"name": "pg", "ports": 5432, "sources": ["192.0.2.10"]}],
        [],
        [{"name": "smtp", "sources": ["198.51.100.0/24"]}],
    )
    assert result == [
        rule(sources=["198.51.100.0/24"], comment="mail"),
        rule(name="pg", ports=["5432"], sources=["192.0.2.10/32"], comment="pg"),
    ]


def test_merge_absent_removes_and_a_later_layer_starts_afresh(fw: ModuleType) -> None:
    layers = [
        [{"name": "legacy", "ports": 8082, "sources": ["192.0.2.1"], "comment": "old"}],
        [{"name": "legacy", "state": "absent"}],
    ]
    assert merge(fw, *layers) == []
    readded = merge(fw, *layers, [{"name": "legacy", "ports": 8083, "sources": "any"}])
    assert readded == [rule(name="legacy", ports=["8083"], comment="legacy")]


def test_merge_absent_of_an_unknown_rule_is_no_error(fw: ModuleType) -> None:
    assert merge(fw, [], [], [], [{"name": "nothing", "state": "absent"}]) == []


def test_merge_null_layers_and_no_names(fw: ModuleType) -> None:
    assert fw.firewall_merge_rules(None) == []
    assert fw.firewall_merge_rules([None, [{"name": "a", "ports": 1, "sources": "any"}]]) == [
        rule(name="a", ports=["1"], comment="a")
    ]


def test_merge_keeps_first_seen_order(fw: ModuleType) -> None:
    result = merge(
        fw,
        [{"name": "b", "ports": 2, "sources": []}, {"name": "a", "ports": 1, "sources": []}],
        [{"name": "c", "ports": 3, "sources": []}],
    )
    assert [r["name"] for r in result] == ["b", "a", "c"]


def test_ports_ranges_sorted_and_merged(fw: ModuleType) -> None:
    result = merge(
        fw,
        [{"name": "x", "ports": [8091, "8000-8010", 25, "8005-8020", 8021, "25", " 443 "], "sources": "any"}],
    )
    assert result[0]["ports"] == ["25", "443", "8000-8021", "8091"]


def test_ports_single_range_endpoints(fw: ModuleType) -> None:
    assert merge(fw, [{"name": "x", "ports": "1-65535", "sources": "any"}])[0]["ports"] == ["1-65535"]
    assert merge(fw, [{"name": "x", "ports": "53-53", "sources": "any"}])[0]["ports"] == ["53"]


def test_sources_collapsed_ipv4_first(fw: ModuleType) -> None:
    result = merge(
        fw,
        [
            {
                "name": "x",
                "ports": 1,
                "sources": ["2001:db8::1", "192.0.2.1", "192.0.2.0/25", "192.0.2.128/25"],
            }
        ],
    )
    assert result[0]["sources"] == ["192.0.2.0/24", "2001:db8::1/128"]


def test_sources_ipv4_mapped_ipv6_is_ipv4(fw: ModuleType) -> None:
    assert merge(fw, [{"name": "x", "ports": 1, "sources": ["::ffff:192.0.2.7"]}])[0]["sources"] == [
        "192.0.2.7/32"
    ]


def test_udp_and_comment(fw: ModuleType) -> None:
    result = merge(fw, [{"name": "dns", "ports": 53, "proto": "udp", "sources": "any", "comment": "lab DNS"}])
    assert result == [rule(name="dns", proto="udp", ports=["53"], comment="lab DNS")]


def test_merged_rules_are_accepted_again(fw: ModuleType) -> None:
    once = merge(fw, [{"name": "x", "ports": [1, "3-4"], "sources": ["192.0.2.0/24", "::1"]}])
    assert fw.firewall_merge_rules([once]) == once


# ------------------------------------------------------------------------------------------------
# Merge errors: each names the filter, the variable (layer), the rule and the field

HEAD = "firewall_merge_rules: firewall__host_rules: rule 'smtp': "

MERGE_ERRORS = {
    "port-out-of-range": (
        {"name": "smtp", "ports": 70000},
        HEAD + "ports: 70000 is out of range 1-65535 (in 70000)",
    ),
    "port-zero": ({"name": "smtp", "ports": 0}, HEAD + "ports: 0 is out of range 1-65535 (in 0)"),
    "port-word": (
        {"name": "smtp", "ports": "smtp"},
        HEAD + "ports: 'smtp' is not a port (give an integer 1-65535 or 'LOW-HIGH')",
    ),
    "port-bool": (
        {"name": "smtp", "ports": True},
        HEAD + "ports: True is not a port (give an integer 1-65535 or 'LOW-HIGH')",
    ),
    "port-range-backwards": (
        {"name": "smtp", "ports": "30-20"},
        HEAD + "ports: range '30-20' runs backwards (LOW-HIGH with LOW <= HIGH)",
    ),
    "port-range-too-high": (
        {"name": "smtp", "ports": ["1000-70000"]},
        HEAD + "ports: 70000 is out of range 1-65535 (in '1000-70000')",
    ),
    "ports-missing": (
        {"name": "smtp"},
        HEAD + "ports is required (a port, a range 'LOW-HIGH' or a list of them)",
    ),
    "ports-empty": (
        {"name": "smtp", "ports": []},
        HEAD + "ports is an empty list; give at least one port, or state: absent",
    ),
    "proto-unknown": (
        {"name": "smtp", "ports": 25, "proto": "sctp"},
        HEAD + "proto must be one of tcp|udp, got 'sctp'",
    ),
    "source-hostname": (
        {"name": "smtp", "ports": 25, "sources": ["mx.example.test"]},
        HEAD + "sources: 'mx.example.test' is not an IPv4/IPv6 address or network",
    ),
    "source-bad-prefix": (
        {"name": "smtp", "ports": 25, "sources": ["192.0.2.0/33"]},
        HEAD + "sources: '192.0.2.0/33' is not an IPv4/IPv6 address or network",
    ),
    "source-host-bits": (
        {"name": "smtp", "ports": 25, "sources": ["192.0.2.1/24"]},
        HEAD + "sources: '192.0.2.1/24' has host bits set (did you mean '192.0.2.0/24'?)",
    ),
    "source-not-a-string": (
        {"name": "smtp", "ports": 25, "sources": [3232235521]},
        HEAD + "sources: 3232235521 is not an IPv4/IPv6 address or network",
    ),
    "sources-a-string": (
        {"name": "smtp", "ports": 25, "sources": "192.0.2.1"},
        HEAD + "sources must be a list of addresses or networks, or 'any', got '192.0.2.1'",
    ),
    "sources-missing": (
        {"name": "smtp", "ports": 25},
        HEAD
        + "sources is required: a list of addresses or networks (empty: nobody), or 'any' for every address",
    ),
    "comment-quote": (
        {"name": "smtp", "ports": 25, "sources": "any", "comment": 'say "hi"'},
        HEAD + "comment must not contain quotes, backslashes or control characters, got 'say \"hi\"'",
    ),
    "comment-too-long": (
        {"name": "smtp", "ports": 25, "sources": "any", "comment": "x" * 129},
        HEAD + "comment is longer than 128 bytes (nftables' limit)",
    ),
    "unknown-field": (
        {"name": "smtp", "ports": 25, "source": ["192.0.2.1"]},
        HEAD + "unknown field(s) source (known: name, ports, proto, sources, comment, state)",
    ),
    "bad-state": (
        {"name": "smtp", "ports": 25, "state": "gone"},
        "firewall_merge_rules: firewall__host_rules: item 0: state must be 'present' or 'absent', got 'gone'",
    ),
}


@pytest.mark.parametrize("case", sorted(MERGE_ERRORS))
def test_merge_errors(fw: ModuleType, case: str) -> None:
    entry, message = MERGE_ERRORS[case]
    with raises(message):
        merge(fw, [], [], [], [entry])


def test_error_names_the_layer_where_the_field_was_set_last(fw: ModuleType) -> None:
    # The bad port comes from the dependent layer; the host layer changed the rule last.
    with raises(
        "firewall_merge_rules: firewall__host_rules: rule 'pg': "
        "ports: 99999 is out of range 1-65535 (in 99999)"
    ):
        merge(fw, [], [{"name": "pg", "ports": 99999, "sources": []}], [], [{"name": "pg", "comment": "db"}])


def test_duplicate_name_in_one_layer(fw: ModuleType) -> None:
    with raises(
        "firewall_merge_rules: firewall__group_rules: item 1: names the same entry as "
        "firewall__group_rules[0]: "
        "one entry per name in a layer (merge the two, or move one to a later layer)"
    ):
        merge(fw, [], [], [{"name": "smtp", "ports": 25}, {"name": "smtp", "ports": 587}])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"ports": 25},
            NAME_RULE + "got None",
        ),
        (
            {"name": "a b", "ports": 25},
            NAME_RULE + "got 'a b'",
        ),
        ("smtp", "an entry must be a mapping, got 'smtp'"),
    ],
)
def test_rule_without_a_usable_name(fw: ModuleType, entry: Any, message: str) -> None:
    with raises(f"firewall_merge_rules: firewall__dependent_rules: item 1: {message}"):
        merge(fw, [], [{"name": "ok", "ports": 1}, entry])


def test_layer_errors(fw: ModuleType) -> None:
    with raises("firewall_merge_rules: input must be a list of layers (lists or null), got dict"):
        fw.firewall_merge_rules({"name": "smtp"})
    with raises("firewall_merge_rules: firewall__group_rules: must be a list, got dict"):
        merge(fw, [], [], {"name": "smtp", "ports": 25})
    with raises("firewall_merge_rules: give one variable name per layer (1), got 2: ['a', 'b']"):
        fw.firewall_merge_rules([[]], ["a", "b"])


# ------------------------------------------------------------------------------------------------
# Rendering


def test_render_order_ssh_first_then_base_rules_then_data_then_refused(fw: ModuleType) -> None:
    rules = merge(
        fw,
        [
            {"name": "smtp", "ports": 25, "sources": "any"},
            {"name": "dns", "ports": 53, "proto": "udp", "sources": "any"},
            {"name": "gone", "ports": 8001, "sources": []},
        ],
    )
    text = fw.firewall_nftables(rules, ["10.0.0.0/8", "fd00::/8"])
    # A rule whose sources are empty admits nobody: a comment, no accept line.
    assert "# gone: tcp 8001 from nobody (no source: the port stays closed)\n" in text
    lines = chain(text)
    assert (
        lines[0]
        == 'ip saddr 10.0.0.0/8 tcp dport 22 counter accept comment "ssh from firewall__admin_networks"'
    )
    assert (
        lines[1]
        == 'ip6 saddr fd00::/8 tcp dport 22 counter accept comment "ssh from firewall__admin_networks"'
    )
    assert lines[2:5] == ['iif "lo" accept', "ct state established,related accept", "ct state invalid drop"]
    assert lines[5].startswith("icmp type { echo-request, destination-unreachable,")
    assert lines[6].startswith("icmpv6 type { echo-request,")
    for needed in (
        "packet-too-big",
        "nd-neighbor-solicit",
        "nd-neighbor-advert",
        "nd-router-advert",
        "nd-router-solicit",
    ):
        assert needed in lines[6]
    assert lines[7:] == [
        'tcp dport 25 counter accept comment "smtp"',
        'udp dport 53 counter accept comment "dns"',
        'limit rate 10/minute burst 5 packets log prefix "mailstack refused: " level info',
        'counter name "refused" drop',
    ]


def test_render_sources_split_by_family(fw: ModuleType) -> None:
    rules = merge(
        fw,
        [
            {
                "name": "pg",
                "ports": [5432, "6000-6001"],
                "sources": ["192.0.2.10", "192.0.2.12", "2001:db8::/64"],
            }
        ],
    )
    lines = chain(fw.firewall_nftables(rules, ADMIN))
    assert (
        'ip saddr { 192.0.2.10, 192.0.2.12 } tcp dport { 5432, 6000-6001 } counter accept comment "pg"'
        in lines
    )
    assert 'ip6 saddr 2001:db8::/64 tcp dport { 5432, 6000-6001 } counter accept comment "pg"' in lines


def test_render_ipv4_only_sources_admit_no_ipv6(fw: ModuleType) -> None:
    lines = chain(
        fw.firewall_nftables(merge(fw, [{"name": "x", "ports": 1, "sources": ["192.0.2.0/24"]}]), ADMIN)
    )
    assert [line for line in lines if "dport 1 " in line] == [
        'ip saddr 192.0.2.0/24 tcp dport 1 counter accept comment "x"'
    ]


def test_render_table_is_replaced_in_one_file_and_nothing_else_is_flushed(fw: ModuleType) -> None:
    text = fw.firewall_nftables([], ADMIN, table="fw")
    assert [line for line in text.splitlines() if line.startswith("table") or line.startswith("delete")] == [
        "table inet fw",
        "delete table inet fw",
        "table inet fw {",
    ]
    assert "flush" not in text.replace("flushes", "")
    assert "counter refused {" in text


def test_render_controller_address_joins_the_admin_set(fw: ModuleType) -> None:
    lines = chain(fw.firewall_nftables([], ["10.0.0.0/8"], controller="192.0.2.5"))
    assert lines[0].startswith("ip saddr { 10.0.0.0/8, 192.0.2.5 } tcp dport 22 ")
    lines = chain(fw.firewall_nftables([], [], controller="2001:db8::5"))
    assert lines[0].startswith("ip6 saddr 2001:db8::5 tcp dport 22 ")


def test_render_no_ssh_no_log_and_raw_rules(fw: ModuleType) -> None:
    lines = chain(fw.firewall_nftables([], [], ssh_ports=[], log_rate="", raw_rules=["tcp dport 9 reject"]))
    assert lines[0] == 'iif "lo" accept'
    assert lines[-2:] == ["tcp dport 9 reject", 'counter name "refused" drop']
    assert not any(line.startswith("limit") for line in lines)


def test_render_ssh_ports_and_log_options(fw: ModuleType) -> None:
    lines = chain(
        fw.firewall_nftables([], ADMIN, ssh_ports=[2222, 22], log_rate="1/second", log_prefix="fw: ")
    )
    assert lines[0].startswith("ip saddr 10.0.0.0/8 tcp dport { 22, 2222 } ")
    assert 'limit rate 1/second burst 5 packets log prefix "fw: " level info' in lines


RENDER_ERRORS = {
    "no-admin": (
        {"admin_networks": []},
        "firewall_nftables: firewall__admin_networks: is empty and the controller's address is unknown: "
        "SSH would be closed to everyone (set firewall__ssh_ports: [] to close SSH on purpose)",
    ),
    "bad-admin": (
        {"admin_networks": ["everyone"]},
        "firewall_nftables: firewall__admin_networks: "
        "entry: 'everyone' is not an IPv4/IPv6 address or network",
    ),
    "bad-controller": (
        {"admin_networks": [], "controller": "x"},
        "firewall_nftables: firewall__admin_networks: "
        "controller address: 'x' is not an IPv4/IPv6 address or network",
    ),
    "bad-ssh-port": (
        {"ssh_ports": [0]},
        "firewall_nftables: firewall__ssh_ports: ports: 0 is out of range 1-65535 (in 0)",
    ),
    "bad-table": (
        {"table": "my table"},
        "firewall_nftables: table must be an identifier ([A-Za-z][A-Za-z0-9_]*, at most 32), got 'my table'",
    ),
    "bad-log-rate": (
        {"log_rate": "often"},
        "firewall_nftables: firewall__log_rate: "
        "must be N/second|minute|hour|day (or empty for no log), got 'often'",
    ),
    "bad-log-prefix": (
        {"log_prefix": 'a"b'},
        "firewall_nftables: firewall__log_prefix: "
        "must be 1-40 characters of letters, digits, space and _.:=-, got 'a\"b'",
    ),
    "raw-multiline": (
        {"raw_rules": ["accept\ndrop"]},
        "firewall_nftables: firewall__raw_rules: "
        "item 0 must be one non-empty line of nft rule text, got 'accept\\ndrop'",
    ),
    "raw-a-string": (
        {"raw_rules": "accept"},
        "firewall_nftables: firewall__raw_rules: must be a list of strings (one nft rule each), got str",
    ),
}


@pytest.mark.parametrize("case", sorted(RENDER_ERRORS))
def test_render_errors(fw: ModuleType, case: str) -> None:
    kwargs, message = RENDER_ERRORS[case]
    args = {"admin_networks": ADMIN, **kwargs}
    with raises(message):
        fw.firewall_nftables([], args.pop("admin_networks"), **args)


def test_render_refuses_unmerged_input(fw: ModuleType) -> None:
    with raises(
        "firewall_nftables: rule 'a': duplicate name (merge the layers with firewall_merge_rules first)"
    ):
        fw.firewall_nftables([{"name": "a", "ports": 1, "sources": []}, {"name": "a", "ports": 2}], ADMIN)
    with raises(
        "firewall_nftables: rule 'a': "
        "state must be 'present' here (merge the layers with firewall_merge_rules first)"
    ):
        fw.firewall_nftables([{"name": "a", "ports": 1, "state": "absent"}], ADMIN)
    with raises("firewall_nftables: rule 'a': ports: 0 is out of range 1-65535 (in 0)"):
        fw.firewall_nftables([{"name": "a", "ports": 0, "sources": "any"}], ADMIN)


# ------------------------------------------------------------------------------------------------
# The role and the documentation use the same layer order and filter names


def test_role_layer_order_is_the_filters(fw: ModuleType) -> None:
    role_vars = yaml.safe_load((ROLE / "vars" / "main.yml").read_text())
    assert tuple(role_vars["__firewall_layers"]) == fw.LAYERS
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert all(defaults[layer] == [] for layer in fw.LAYERS)


def test_role_defaults_render(fw: ModuleType) -> None:
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert defaults["firewall__admin_allow_controller"] is False
    rules = fw.firewall_merge_rules([defaults[layer] for layer in fw.LAYERS], list(fw.LAYERS))

    def render(variables: dict) -> str:
        networks = trust_as_template(defaults["firewall__admin_networks"])
        return fw.firewall_nftables(
            rules,
            Templar(loader=DataLoader(), variables=variables).template(networks),
            ssh_ports=defaults["firewall__ssh_ports"],
            table=defaults["firewall__table"],
            log_rate=defaults["firewall__log_rate"],
            log_prefix=defaults["firewall__log_prefix"],
            raw_rules=defaults["firewall__raw_rules"],
        )

    # The admin networks are the inventory's mailstack__admin_networks ...
    assert chain(render({"mailstack__admin_networks": ["192.0.2.0/28"]}))[0] == (
        'ip saddr 192.0.2.0/28 tcp dport 22 counter accept comment "ssh from firewall__admin_networks"'
    )
    # ... and without it no range is assumed: the role refuses to render SSH from nowhere.
    with pytest.raises(AnsibleFilterError, match="firewall__admin_networks: is empty"):
        render({})
