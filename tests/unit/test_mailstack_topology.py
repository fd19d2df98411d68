"""plugin_utils/topology.py and dns.py: the topology, a pure function of the inventory and the run's inputs,
and the DNS records."""

from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible_collections.mailstack.site.plugins.plugin_utils.dns import (
    dkim_selectors as mailstack_dkim_selectors,
)
from ansible_collections.mailstack.site.plugins.plugin_utils.dns import dns_records as mailstack_dns_records
from ansible_collections.mailstack.site.plugins.plugin_utils.topology import INGRESS, LISTENERS
from ansible_collections.mailstack.site.plugins.plugin_utils.topology import topology as mailstack_topology

ROOT = Path(__file__).resolve().parents[2]


def inventory(**groups):
    """groups as {group: {host: vars}} -> (groups, hostvars) as Ansible passes them."""
    group_hosts = {name: list(hosts) for name, hosts in groups.items()}
    hostvars = {}
    for hosts in groups.values():
        for host, hvars in hosts.items():
            hostvars.setdefault(host, {}).update(hvars)
    return group_hosts, hostvars


def addr(n):
    return {"mailstack__address": f"10.0.0.{n}", "mailstack__secret_dir": "/srv/secret",
            "mailstack__admin_networks": ["10.0.9.0/24"]}


CORE = {
    **addr(21),
    "mailman_core__domains": [{"name": "lists.example.org"}],
    "mailman_core__lists": [{"name": "dev@lists.example.org"}],
}


def cluster(**extra):
    groups = {
        "mx": {"mx1": addr(11), "mx2": addr(12)},
        "mailman_core": {"list1": CORE},
        "relays": {"relay1": addr(31), "relay2": addr(32)},
        "db": {"db1": addr(41)},
        "mailman_web": {"web1": addr(51)},
        "proxy": {"proxy1": addr(61)},
    }
    return inventory(**{**groups, **extra})


def test_peers_networks_and_next_hops_of_a_cluster():
    topo = mailstack_topology(*cluster())
    assert topo["single_server"] is False
    assert topo["list_domains"] == ["lists.example.org"]
    assert topo["mynetworks"] == {
        "mailman_core": ["127.0.0.0/8", "10.0.0.11", "10.0.0.12"],
        "relays": ["127.0.0.0/8", "10.0.0.21", "10.0.0.51"],
    }
    # The relays sign the back-ends' mail only, and refuse list-domain senders from the web node.
    assert topo["relay_signing_networks"] == ["127.0.0.0/8", "10.0.0.21"]
    assert topo["relay_list_sender_refused"] == ["10.0.0.51"]
    assert topo["backend_next_hops"] == ["[10.0.0.21]:25"]
    assert topo["inbound_hosts"] == ["mx1", "mx2"]
    assert topo["relay_next_hops"] == ["[10.0.0.31]:25", "[10.0.0.32]:25"]
    assert topo["addresses"]["relays"] == ["10.0.0.31", "10.0.0.32"]


def test_a_back_end_that_is_also_a_web_node_is_in_the_relays_networks_once():
    groups, hostvars = inventory(
        mx={"mx1": addr(11)},
        mailman_core={"list1": CORE},
        relays={"relay1": addr(31)},
        mailman_web={"list1": {}, "web2": addr(52)},
        proxy={"proxy1": addr(61)},
    )
    topo = mailstack_topology(groups, hostvars)
    assert topo["mynetworks"]["relays"] == ["127.0.0.0/8", "10.0.0.21", "10.0.0.52"]
    # The back-end keeps its list senders; only the web-only node is refused them.
    assert topo["relay_list_sender_refused"] == ["10.0.0.52"]


def test_a_draining_relay_gets_no_new_mail_but_keeps_its_address():
    groups, hostvars = cluster()
    hostvars["relay1"]["mailstack__draining"] = True
    topo = mailstack_topology(groups, hostvars)
    assert topo["relay_next_hops"] == ["[10.0.0.32]:25"]
    assert topo["draining"]["relays"] == ["relay1"]
    assert topo["relay_heir"] == "relay2"
    assert topo["addresses"]["relays"] == ["10.0.0.31", "10.0.0.32"]


def test_the_run_drains_relays_by_name_and_refuses_what_is_not_a_relay():
    topo = mailstack_topology(*cluster(), {"draining": "relay2"})
    assert topo["relay_next_hops"] == ["[10.0.0.31]:25"]
    assert (topo["draining"], topo["relay_heir"]) == ({"relays": ["relay2"]}, "relay1")
    assert mailstack_topology(*cluster(), {"draining": ["relay1"]})["relay_heir"] == "relay2"
    with pytest.raises(AnsibleFilterError, match=r"^topology: draining mx1: not relays of this inventory"):
        mailstack_topology(*cluster(), {"draining": "mx1"})
    with pytest.raises(AnsibleFilterError, match=r"^topology: every relay is draining \(relay1, relay2\)"):
        mailstack_topology(*cluster(), {"draining": "relay1, relay2"})
    with pytest.raises(AnsibleFilterError, match=r"^topology: run: unknown input\(s\) drain; expected"):
        mailstack_topology(*cluster(), {"drain": "relay1"})


def test_draining_every_relay_is_refused():
    groups, hostvars = cluster()
    hostvars["relay1"]["mailstack__draining"] = True
    hostvars["relay2"]["mailstack__draining"] = True
    with pytest.raises(AnsibleFilterError, match=r"every relay is draining \(relay1, relay2\): postfix-out"):
        mailstack_topology(groups, hostvars)


def test_draining_must_be_a_boolean():
    groups, hostvars = cluster()
    hostvars["relay2"]["mailstack__draining"] = "yes"
    with pytest.raises(AnsibleFilterError, match=r"host 'relay2': mailstack__draining must be true or false"):
        mailstack_topology(groups, hostvars)


def test_ingress_rules_open_each_port_to_its_peers_only():
    ingress = mailstack_topology(*cluster())["ingress"]
    rules = {host: {r["name"]: (r["ports"], r["sources"]) for r in rs} for host, rs in ingress.items()}
    assert rules["mx1"] == {"mx-smtp": ([25], "any")}
    assert rules["list1"] == {
        "mailman_core-smtp": ([25], ["10.0.0.11/32", "10.0.0.12/32"]),
        "mailman_core-mailman-rest": ([8001], ["10.0.0.51/32"]),
    }
    assert rules["relay1"] == {"relays-smtp": ([25], ["10.0.0.21/32", "10.0.0.51/32"])}
    assert rules["db1"] == {"db-postgresql": ([5432], ["10.0.0.21/32", "10.0.0.51/32"])}
    assert rules["proxy1"] == {"proxy-http": ([80], "any"), "proxy-https": ([443], "any")}
    assert rules["web1"] == {
        "mailman_web-uwsgi": ([8000], ["10.0.0.61/32"]),
        "mailman_web-memcached": ([11211], ["10.0.0.51/32"]),
    }


def test_the_back_ends_reach_the_web_side_through_every_proxy_under_one_name():
    groups, hostvars = cluster(
        proxy={"proxy1": addr(61), "proxy2": {**addr(62), "mailstack__address": "fd00::62"}}
    )
    topo = mailstack_topology(groups, hostvars)
    assert topo["web_internal_url"] == "http://web.mailstack.internal"
    assert topo["web_internal_hosts"] == [
        {"address": "10.0.0.61", "names": ["web.mailstack.internal"]},
        {"address": "fd00::62", "names": ["web.mailstack.internal"]},
    ]


def test_the_proxy_balances_over_every_web_node_and_the_web_nodes_use_the_first_core():
    groups, hostvars = cluster()
    groups["mailman_web"] = ["web1", "web2"]
    hostvars["web2"] = {**addr(52), "mailman_web__uwsgi_port": 8100}
    topo = mailstack_topology(groups, hostvars)
    assert topo["web_upstreams"] == ["10.0.0.51:8000", "10.0.0.52:8100"]
    assert topo["core_rest_url"] == "http://10.0.0.21:8001"
    assert topo["core_rest_host"] == {"list1": "10.0.0.21"}
    assert topo["web_tasks_host"] == "web1"
    assert topo["web_memcached"] == {"host": "web1", "address": "10.0.0.51", "port": 11211}
    assert topo["relay_clients"] == ["list1", "web1", "web2"] == ["list1", *topo["web_postfix_hosts"]]
    groups["mailman_core"] = groups["mx"] = []
    groups["mailman_web"] = []
    assert mailstack_topology(groups, hostvars)["core_rest_url"] == ""


def test_web_front_ends_without_a_proxy_are_refused():
    groups, hostvars = cluster()
    groups["proxy"] = []
    with pytest.raises(AnsibleFilterError, match=r"the mailman_web hosts \(web1\) need a proxy host"):
        mailstack_topology(groups, hostvars)
    groups["mailman_web"] = []
    topo = mailstack_topology(groups, hostvars)
    assert (topo["web_internal_url"], topo["web_internal_hosts"], topo["web_memcached"]) == ("", [], {})
    assert topo["core_rest_host"] == {"list1": "127.0.0.1"}  # no web node: REST on loopback only


def test_a_host_in_several_groups_gets_the_union_and_ports_from_its_variables():
    groups, hostvars = inventory(
        mailman_core={"list1": {**CORE, "mailman_core__rest_port": 8101, "postgresql__port": "5433"}},
        db={"list1": {}},
        mx={"mx1": {**addr(11), "mailstack__address": "fd00::11"}},
    )
    rules = {r["name"]: r for r in mailstack_topology(groups, hostvars)["ingress"]["list1"]}
    assert rules["mailman_core-smtp"]["sources"] == ["fd00::11/128"]
    assert rules["db-postgresql"]["ports"] == [5433]
    assert rules["db-postgresql"]["sources"] == ["10.0.0.21/32"]
    assert "mailman_core-mailman-rest" not in rules  # no mailman_web host: the port stays closed


def test_single_server_scans_on_port_25_open_to_everyone_and_opens_no_port_without_peers():
    groups, hostvars = inventory(mailman_core={"list1": CORE}, relays={"relay1": addr(31)})
    topo = mailstack_topology(groups, hostvars)
    assert topo["single_server"] is True
    assert topo["inbound_hosts"] == ["list1"]
    assert topo["mynetworks"]["mailman_core"] == ["127.0.0.0/8"]
    # Port 25 (it is the MX) and nothing else: REST has no web node to serve, so no rule at all.
    assert [(r["name"], r["sources"]) for r in topo["ingress"]["list1"]] == [("mailman_core-smtp", "any")]


def test_without_back_ends_nothing_takes_inbound_mail():
    groups, hostvars = inventory(relays={"relay1": addr(31)})
    assert mailstack_topology(groups, hostvars)["inbound_hosts"] == []


def test_list_domains_merge_the_layers_by_name_over_every_back_end():
    groups, hostvars = inventory(
        mailman_core={
            "list1": {
                **addr(21),
                "mailman_core__domains": [{"name": "A.example.org"}, {"name": "b.example.org"}],
                "mailman_core__host_domains": [{"name": "b.example.org", "state": "absent"}],
            },
            "list2": {
                **addr(22),
                "mailman_core__group_domains": [{"name": "c.example.org"}, {"name": "a.example.org"}],
                "mailstack__active_backend": True,
            },
        },
        nfs_server={"store1": addr(25)},
    )
    assert mailstack_topology(groups, hostvars)["list_domains"] == ["a.example.org", "c.example.org"]


@pytest.mark.parametrize(
    ("hostvars_change", "message"),
    [
        ({"relay1": {}}, "host 'relay1' has no mailstack__address"),
        (
            {"relay1": {"mailstack__address": "relay1.example.org"}},
            "host 'relay1': mailstack__address must be an IPv4",
        ),
        (
            {"list1": {**CORE, "mailman_core__rest_port": "eighty"}},
            "host 'list1': mailman_core__rest_port must be a port",
        ),
        (
            {"list1": {**CORE, "mailman_core__rest_port": 70000}},
            "host 'list1': mailman_core__rest_port must be a port",
        ),
        (
            {"list1": {**CORE, "mailman_core__domains": [{"name": "not a domain"}]}},
            r"host 'list1': mailman_core__domains\[0\]: name must be a domain name",
        ),
        (
            {"list1": {**CORE, "mailman_core__domains": "lists.example.org"}},
            "host 'list1': mailman_core__domains: must be a list",
        ),
        (
            {
                "list1": {
                    **CORE,
                    "mailman_core__group_lists": [
                        {"name": "x@lists.example.org"},
                        {"name": "ops@other.example.org"},
                    ],
                }
            },
            r"host 'list1': mailman_core__group_lists\[1\] 'ops@other.example.org' is in domain "
            r"'other.example.org', "
            r"which is not one of its mailman_core__domains \(lists.example.org\)",
        ),
        (
            {"list1": {**CORE, "mailman_core__lists": [{"name": "no-domain"}]}},
            r"host 'list1': mailman_core__lists\[0\]: name must be an address local@domain",
        ),
    ],
)
def test_bad_inventories_are_refused_naming_host_and_variable(hostvars_change, message):
    groups, hostvars = cluster()
    hostvars.update(hostvars_change)
    with pytest.raises(AnsibleFilterError, match=f"^topology: {message}"):
        mailstack_topology(groups, hostvars)


def test_a_list_marked_absent_may_name_a_domain_no_longer_served():
    groups, hostvars = cluster()
    hostvars["list1"] = {
        **CORE,
        "mailman_core__host_lists": [{"name": "old@gone.example.org", "state": "absent"}],
    }
    assert mailstack_topology(groups, hostvars)["list_domains"] == ["lists.example.org"]


@pytest.mark.parametrize(
    ("variable", "default"),
    sorted(
        {spec for _group, _name, spec, _proto, _sources, _fallback in INGRESS if spec[0]}
        | {spec for specs in LISTENERS.values() for spec in specs if spec[0]}
    ),
)
def test_port_defaults_are_the_roles_defaults(variable, default):
    role = variable.split("__", 1)[0]
    defaults = yaml.safe_load((ROOT / "roles" / role / "defaults" / "main.yml").read_text())
    assert defaults[variable] == default, f"{variable}: topology default {default} != role default"


def test_database_clients_are_the_mailman_hosts():
    assert mailstack_topology(*cluster())["db_clients"] == ["10.0.0.21/32", "10.0.0.51/32"]


@pytest.mark.parametrize(
    ("hostvars_change", "message"),
    [
        (
            {"list1": {**CORE, "mailman_core__rest_port": 8024}},
            "host 'list1': port 8024 of mailman_core__rest_port is already used by mailman_core__lmtp_port",
        ),
        ({"db1": {**addr(41), "postgresql__port": 25}}, None),
    ],
)
def test_two_services_of_one_host_may_not_share_a_port(hostvars_change, message):
    groups, hostvars = cluster()
    hostvars.update(hostvars_change)
    if message is None:  # another host's port 25 is no conflict
        assert mailstack_topology(groups, hostvars)["db_port"] == 25
        return
    with pytest.raises(AnsibleFilterError, match=f"^topology: {message}"):
        mailstack_topology(groups, hostvars)


def test_a_back_end_that_is_also_the_database_host_is_checked_across_groups():
    groups, hostvars = inventory(mailman_core={"list1": {**CORE, "postgresql__port": 8001}}, db={"list1": {}})
    with pytest.raises(AnsibleFilterError, match="host 'list1': port 8001 of "):
        mailstack_topology(groups, hostvars)


def test_a_single_server_also_checks_rspamd_ports():
    groups, hostvars = inventory(mailman_core={"list1": {**CORE, "rspamd__milter_port": 10025}})
    with pytest.raises(AnsibleFilterError, match="port 10025 of rspamd__milter_port is already used"):
        mailstack_topology(groups, hostvars)


def test_dkim_selectors_default_and_per_domain():
    got = mailstack_dkim_selectors(["a.example.org", "b.example.org"], "ms1", {"b.example.org": "ms2"})
    assert got == [
        {"domain": "a.example.org", "selector": "ms1"},
        {"domain": "b.example.org", "selector": "ms2"},
    ]


@pytest.mark.parametrize(
    ("selector", "overrides", "message"),
    [
        ("Bad_Selector", {}, r"mailstack__dkim_selector must be a DNS label"),
        ("ms1", {"a.example.org": "-x"}, r"mailstack__dkim_selectors\['a.example.org'\] must be a DNS label"),
        ("ms1", {"other.example.org": "ms2"}, r"names 'other.example.org', which is not a list domain"),
        ("ms1", ["ms2"], r"must be a mapping of list domain to selector"),
    ],
)
def test_dkim_selectors_errors_name_the_variable(selector, overrides, message):
    with pytest.raises(AnsibleFilterError, match=message):
        mailstack_dkim_selectors(["a.example.org"], selector, overrides)


def test_dns_records_dkim_spf_dmarc():
    topo = mailstack_topology(*cluster())
    key = "A" * 392
    records = mailstack_dns_records(
        [{"domain": "lists.example.org", "selector": "ms1", "public_key": key[:200] + "\n" + key[200:]}], topo
    )
    dkim, spf, dmarc = records
    assert dkim["name"] == "ms1._domainkey.lists.example.org"
    assert dkim["text"] == f"v=DKIM1; k=rsa; p={key}"
    assert [len(s) for s in dkim["strings"]] == [255, len(dkim["text"]) - 255]
    assert "".join(dkim["strings"]) == dkim["text"]
    assert dkim["zone"].startswith('ms1._domainkey.lists.example.org. 3600 IN TXT ( "v=DKIM1; k=rsa; p=AAA')
    assert spf["name"] == "lists.example.org"
    assert spf["text"] == "v=spf1 ip4:10.0.0.31 ip4:10.0.0.32 -all"
    assert dmarc == {**dmarc, "name": "_dmarc.lists.example.org", "text": "v=DMARC1; p=none"}


@pytest.mark.parametrize(
    ("keys", "kwargs", "message"),
    [
        ([{"domain": "d", "selector": "s"}], {}, r"input\[0\] needs domain, selector and public_key"),
        (
            [{"domain": "d", "selector": "s", "public_key": "not base64!"}],
            {},
            r"input\[0\] \(d\): public_key is not base64",
        ),
        ([], {"dmarc": "p=none"}, r"mailstack__dmarc_record must start with 'v=DMARC1;'"),
        ([], {"spf_all": "+all"}, r"mailstack__spf_all must be -all, ~all or \?all"),
        ("x", {}, r"input must be a list of DKIM keys"),
    ],
)
def test_dns_records_errors(keys, kwargs, message):
    with pytest.raises(AnsibleFilterError, match=f"^dns_records: {message}"):
        mailstack_dns_records(keys, mailstack_topology(*cluster()), **kwargs)


# ---- Active and standby back-ends (one Mailman on the shared data) ----------------------------

STANDBY = {**addr(22), "mailman_core__domains": [{"name": "lists.example.org"}]}


def shared_cluster(list1=None, list2=None):
    return inventory(
        mx={"mx1": addr(11)},
        mailman_core={"list1": {**CORE, **(list1 or {})}, "list2": {**STANDBY, **(list2 or {})}},
        relays={"relay1": addr(31)},
        nfs_server={"store1": addr(25)},
    )


def test_the_run_fails_over_to_a_standby_without_touching_the_inventory():
    groups, hostvars = shared_cluster(list1={"mailstack__active_backend": True})
    topo = mailstack_topology(groups, hostvars, {"failover_to": "list2"})
    assert (topo["backend_active"], topo["backend_standbys"], topo["backend_takeover"]) == (
        "list2",
        ["list1"],
        True,
    )
    assert topo["backend_next_hops"] == ["[10.0.0.22]:25"]
    assert mailstack_topology(groups, hostvars)["backend_takeover"] is False
    with pytest.raises(AnsibleFilterError, match=r"^topology: failover to 'relay1': not a mailman_core host"):
        mailstack_topology(groups, hostvars, {"failover_to": "relay1"})
    with pytest.raises(
        AnsibleFilterError, match=r"^topology: failover to 'list1': the back-ends share no data"
    ):
        mailstack_topology(*cluster(), {"failover_to": "list1"})


def test_the_share_belongs_to_the_uid_every_back_end_gives_mailman():
    groups, hostvars = shared_cluster(list1={"mailstack__active_backend": True})
    assert mailstack_topology(groups, hostvars)["share"] == {
        "path": "/srv/nfs/mailman",
        "owner": 38,
        "group": 38,
        "mode": "0775",
    }
    hostvars["list1"]["mailman_core__uid"] = hostvars["list2"]["mailman_core__uid"] = 999
    hostvars["store1"]["mailstack__mailman_share_path"] = "/export/mailman"
    share = mailstack_topology(groups, hostvars)["share"]
    assert (share["path"], share["owner"], share["group"]) == ("/export/mailman", 999, 38)
    hostvars["list2"]["mailman_core__uid"] = 38
    with pytest.raises(AnsibleFilterError, match=r"^topology: mailman_core__uid differs between the hosts"):
        mailstack_topology(groups, hostvars)


def test_one_backend_is_active_without_a_mark():
    topo = mailstack_topology(*cluster())
    assert topo["backend_active"] == "list1"
    assert topo["core_rest_url"] == "http://10.0.0.21:8001"
    assert topo["backend_standbys"] == []


def test_the_marked_backend_is_the_only_next_hop_and_the_others_are_standbys():
    topo = mailstack_topology(
        *shared_cluster(list2={"mailstack__active_backend": True}, list1={"mailstack__active_backend": False})
    )
    assert topo["backend_active"] == "list2"
    assert topo["backend_standbys"] == ["list1"]
    assert topo["backend_next_hops"] == ["[10.0.0.22]:25"]
    assert topo["core_rest_url"] == "http://10.0.0.22:8001"
    # Both back-ends may mount the share and send to the relays (a standby's postfix-out stays ready).
    assert topo["nfs_clients"] == ["10.0.0.21/32", "10.0.0.22/32"]
    assert topo["nfs_client_of"] == {"list1": "10.0.0.21/32", "list2": "10.0.0.22/32"}
    assert topo["mynetworks"]["relays"] == ["127.0.0.0/8", "10.0.0.21", "10.0.0.22"]


def test_two_active_backends_on_one_share_are_refused_by_name():
    groups, hostvars = shared_cluster(
        list1={"mailstack__active_backend": True}, list2={"mailstack__active_backend": True}
    )
    with pytest.raises(AnsibleFilterError, match=r"two or more active back-ends on one share: list1, list2"):
        mailstack_topology(groups, hostvars)


def test_several_backends_need_a_mark():
    with pytest.raises(AnsibleFilterError, match=r"set mailstack__active_backend: true on the one"):
        mailstack_topology(*shared_cluster())


def test_several_backends_need_the_share():
    groups, hostvars = shared_cluster(list1={"mailstack__active_backend": True})
    groups["nfs_server"] = []
    with pytest.raises(AnsibleFilterError, match=r"2 hosts \(list1, list2\) but no nfs_server host"):
        mailstack_topology(groups, hostvars)


def test_the_active_mark_must_be_a_boolean():
    groups, hostvars = shared_cluster(list1={"mailstack__active_backend": "yes"})
    with pytest.raises(AnsibleFilterError, match=r"'list1': mailstack__active_backend must be true or false"):
        mailstack_topology(groups, hostvars)


def test_nfs_is_open_to_the_backends_only():
    topo = mailstack_topology(*shared_cluster(list1={"mailstack__active_backend": True}))
    rules = {r["name"]: r for r in topo["ingress"]["store1"]}
    assert rules["nfs_server-nfs"]["ports"] == [2049]
    assert rules["nfs_server-nfs"]["sources"] == ["10.0.0.21/32", "10.0.0.22/32"]


def test_the_filter_benchmarks_site_is_a_topology_it_accepts():
    """bench/filters.py times the filter on an 851-host site: the site must stay valid as the
    topology's rules grow (one active back-end, shared storage)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("bench_filters_site", ROOT / "bench" / "filters.py")
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    topo = mailstack_topology(*bench.site_inventory())
    assert topo["backend_active"] == "mailman_core0"
    assert len(topo["backend_standbys"]) == 149
    assert len(topo["relay_next_hops"]) == 600


# ---- The inventory contract (formerly preflight's checks) --------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda g, h: h["mx2"].update(mailstack__address="10.0.0.11"),
            "hosts 'mx1' and 'mx2' have the same mailstack__address 10.0.0.11",
        ),
        (
            lambda g, h: g.update(relays=[*g["relays"], "mx1"]),
            "hosts mx1 are in both the mx and the relays group",
        ),
        (
            lambda g, h: (g.update(db=["db1", "db2"]), h.update(db2=addr(42))),
            r"the db group has 2 hosts \(db1, db2\)",
        ),
        (
            lambda g, h: g.update(mailman_core=[], mailman_web=[]),
            "the mx group has hosts but the mailman_core group is empty",
        ),
        (
            lambda g, h: h["mx1"].pop("mailstack__admin_networks"),
            r"host 'mx1': mailstack__admin_networks is not set: give the networks SSH is admitted from",
        ),
        (
            lambda g, h: h["mx1"].update(mailstack__admin_networks="10.0.9.0/24"),
            r"host 'mx1': mailstack__admin_networks must be a list of addresses or networks, "
            r"got '10.0.9.0/24'",
        ),
        (
            lambda g, h: h["proxy1"].update(mailstack__admin_networks=["10.0.9.0/24", "office"]),
            r"host 'proxy1': mailstack__admin_networks: 'office' is not an address or network",
        ),
        (
            lambda g, h: h["relay1"].pop("mailstack__secret_dir"),
            "host 'relay1': mailstack__secret_dir is not set",
        ),
        (
            lambda g, h: h.update(list1={**addr(21), "mailman_core__domains": []}),
            r"the list back-ends \(list1\) serve no mail domain",
        ),
    ],
)
def test_the_contract_is_checked_before_anything_changes(change, message):
    groups, hostvars = cluster()
    change(groups, hostvars)
    with pytest.raises(AnsibleFilterError, match=f"^topology: {message}"):
        mailstack_topology(groups, hostvars)


def test_every_inventory_host_with_an_address_is_named_lab_hosts_too():
    groups, hostvars = cluster()
    groups["all"] = ["dns", *(h for hosts in groups.values() for h in hosts)]
    hostvars["dns"] = {"mailstack__address": "10.0.0.53"}  # not a tier host: no secret directory needed
    topo = mailstack_topology(groups, hostvars)
    assert topo["address"]["dns"] == "10.0.0.53"
    assert topo["address"]["relay2"] == "10.0.0.32"
    assert topo["secret_dirs"] == ["/srv/secret"]
