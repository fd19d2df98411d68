#!/usr/bin/env python3
"""Benchmark the filters that merge and render every Postfix instance's configuration.

    .venv/bin/python bench/filters.py [--repeats 5] [--no-write]

Times, through the real Python of the mailstack.site collection with the postfix role's real defaults (every
profile, rspamd's dependent profile), templated by Ansible's own Templar as the role does:

  - postfix_instances (merge of every layer by key, checks, main.cf and master.cf rendering) for
    each kind of host: an MX node, a list back-end (primary + postfix-out), a relay;
  - a site of 1,000 instances: 100 MX nodes, 150 back-ends and 600 relays (850 hosts; each
    back-end's postfix-out spreads over the 600 relays), and one host with 1,000 instances;
  - the topology (mailstack.site.topology) over that 850-host inventory, and through
    Ansible: one task using mailstack__topology on every host of the site divided by 16 and by 8,
    derived at each use (a play variable) and once per run (playbooks/topology.yml, a fact);
  - the pieces: postfix_merge_params, postfix_merge_services, postfix_main_cf, postfix_master_cf,
    the merge engine (merge_layers).

Each figure is the median of --repeats runs. The table is printed and written into
docs/benchmarks/README.md. `measure()` (Debian's master.cf + N extra services) is the older,
smaller benchmark.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
# The collection's Python and the tests' shared code, as pytest finds them (pyproject's pythonpath).
sys.path[:0] = [str(ROOT / "collections"), str(ROOT / "tests")]
DEBIAN_MASTER_CF = ROOT / "tests" / "data" / "debian-master.cf"
SITE = {"mx": 100, "mailman_core": 150, "relays": 600}  # 100 + 2 * 150 + 600 = 1,000 instances
SECRET = {"mailstack__secret_dir": "/srv/mailstack-secret", "mailstack__admin_networks": ["10.9.0.0/24"]}


def load_filters() -> ModuleType:
    """The Postfix model's functions (tests/support/postfix.py: the collection's plugin_utils)."""
    import support.postfix  # noqa: PLC0415 (after the sys.path entries above)

    return support.postfix


def load_site() -> SimpleNamespace:
    """The topology and the merge engine of the collection."""
    from ansible_collections.mailstack.site.plugins.plugin_utils import layers, topology  # noqa: PLC0415

    return SimpleNamespace(topology=topology.topology, merge_layers=layers.merge_named_layers)


# --------------------------------------------------------------------------------------------
# The older benchmark: Debian's master.cf plus N extra services


def extra_services(count: int) -> list[dict[str, Any]]:
    """Realistic additions: smtpd listeners with overrides, pipe transports with args, plain services."""
    services: list[dict[str, Any]] = []
    for i in range(count):
        kind = i % 3
        if kind == 0:
            services.append(
                {
                    "name": f"127.0.0.1:{20000 + i}",
                    "type": "inet",
                    "private": False,
                    "chroot": False,
                    "command": "smtpd",
                    "comment": f"listener {i}",
                    "options": {
                        "syslog_name": f"postfix/listener{i}",
                        "smtpd_milters": [],
                        "smtpd_recipient_restrictions": ["permit_mynetworks", "reject"],
                        "smtpd_banner": "$myhostname ESMTP listener",
                        "smtpd_tls_security_level": "none",
                    },
                }
            )
        elif kind == 1:
            services.append(
                {
                    "name": f"transport{i}",
                    "type": "unix",
                    "unpriv": False,
                    "chroot": False,
                    "command": "pipe",
                    "args": ["flags=FRX", "user=list", "argv=/usr/bin/deliver", "${nexthop}", "${user}"],
                }
            )
        else:
            services.append(
                {
                    "name": f"smtp{i}",
                    "type": "unix",
                    "chroot": True,
                    "maxproc": 20,
                    "command": "smtp",
                    "options": {"smtp_helo_timeout": "5s", "smtp_connect_timeout": 5},
                }
            )
    return services


def _time(func: Callable[[], Any], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return times


def measure(extra: int = 500, runs: int = 20) -> dict[str, list[float]]:
    """Seconds per call of each step over `runs` runs (Debian's master.cf + `extra` services)."""
    pf = load_filters()
    stock = pf.postfix_parse_master_cf(DEBIAN_MASTER_CF.read_text())
    services = stock + extra_services(extra)
    text = pf.postfix_master_cf(services)
    host_layer = [
        {"name": "smtp", "type": "inet", "maxproc": 100},
        {"name": "uucp", "type": "unix", "state": "absent"},
    ]
    return {
        "postfix_master_cf": _time(lambda: pf.postfix_master_cf(services, "postfix-out"), runs),
        "postfix_merge_services (3 layers)": _time(
            lambda: pf.postfix_merge_services([stock, extra_services(extra), host_layer], "postfix-out"), runs
        ),
        "postfix_parse_master_cf": _time(lambda: pf.postfix_parse_master_cf(text), runs),
        "merge + render": _time(
            lambda: pf.postfix_master_cf(
                pf.postfix_merge_services([stock, extra_services(extra), host_layer])
            ),
            runs,
        ),
    }


# --------------------------------------------------------------------------------------------
# The role's inputs, as Ansible templates them


def _trusted(value: Any) -> Any:
    """Mark the strings of role defaults as templates (ansible-core 2.19 renders only trusted ones)."""
    from ansible.template import trust_as_template  # noqa: PLC0415

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return {k: _trusted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def role_variables() -> dict[str, Any]:
    """The postfix and rspamd roles' defaults and vars, as Ansible would load them for one host."""
    files = [
        *sorted((ROOT / "roles" / "postfix" / "defaults" / "main").glob("*.yml")),
        ROOT / "roles" / "postfix" / "vars" / "main.yml",
        ROOT / "roles" / "rspamd" / "defaults" / "main.yml",
        ROOT / "roles" / "rspamd" / "vars" / "main.yml",
    ]
    variables: dict[str, Any] = {}
    for path in files:
        variables.update(_trusted(yaml.safe_load(path.read_text())))
    variables.update({"ansible_facts": {"fqdn": "host.example.org"}, "inventory_hostname": "host"})
    variables["mailstack__secret_dir"] = "/nonexistent"  # rspamd's password lookup is never templated
    return variables


def template_inputs(variables: dict[str, Any], play_vars: dict[str, Any]) -> dict[str, Any]:
    """__postfix_inputs (roles/postfix/vars/main.yml) templated by Ansible with the play's vars."""
    from ansible.template import Templar  # noqa: PLC0415

    templar = Templar(variables={**variables, **_trusted(play_vars)})
    return templar.template(variables["__postfix_inputs"])


def site_inputs(variables: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """One host of each kind of the 1,000-instance site, as the tier playbooks call the role."""
    relays = [f"[10.30.{i // 250}.{i % 250 + 1}]:25" for i in range(SITE["relays"])]
    backends = [f"[10.20.{i // 250}.{i % 250 + 1}]:25" for i in range(SITE["mailman_core"])]
    mx = template_inputs(
        variables,
        {
            "postfix__inbound_scanning_domains": ["lists.example.org"],
            "postfix__inbound_scanning_next_hops": backends,
            "postfix__dependent_profiles": "{{ rspamd__postfix__dependent_profiles }}",
            "postfix__instances": [{"name": "-", "profile": "inbound_scanning"}],
        },
    )
    backend = template_inputs(
        variables,
        {
            "postfix__instances": [
                {"name": "-", "profile": "list_inbound", "mynetworks": ["127.0.0.0/8", "10.10.0.0/24"]},
                {"name": "postfix-out", "profile": "loopback_unchecked", "relay_next_hops": relays},
            ],
            "postfix__dependent_instances": [
                {
                    "name": "-",
                    "maincf": [
                        {"name": "transport_maps", "value": "hash:/var/lib/mailman3/data/postfix_lmtp"},
                        {"name": "relay_domains", "value": "hash:/var/lib/mailman3/data/postfix_domains"},
                    ],
                },
                {"name": "postfix-out", "profile": "loopback_unchecked", "port": 10025},
            ],
        },
    )
    relay = template_inputs(
        variables,
        {
            "postfix__instances": [
                {"name": "-", "profile": "relay", "mynetworks": ["127.0.0.0/8", "10.20.0.0/24"]}
            ]
        },
    )
    many = copy.deepcopy(relay)
    many["postfix__instances"] = [{"name": "-"}] + [
        {
            "name": f"postfix-n{i}",
            "profile": "loopback_unchecked",
            "port": 20000 + i,
            "relay_next_hops": relays[:3],
        }
        for i in range(999)
    ]
    return {"mx": mx, "mailman_core": backend, "relays": relay, "one host, 1,000 instances": many}


def site_inventory(divisor: int = 1) -> tuple[dict[str, list[str]], dict[str, dict[str, Any]]]:
    """groups and hostvars of the site (850 tier hosts and a storage host; each tier divided by divisor), as
    the topology filter receives them."""
    groups: dict[str, list[str]] = {}
    hostvars: dict[str, dict[str, Any]] = {}
    for net, (group, whole) in enumerate(SITE.items(), 1):
        groups[group] = [f"{group}{i}" for i in range(max(1, whole // divisor))]
        for i, host in enumerate(groups[group]):
            hostvars[host] = {"mailstack__address": f"10.{net}.{i // 250}.{i % 250 + 1}", **SECRET}
    for i, host in enumerate(groups["mailman_core"]):
        hostvars[host]["mailman_core__domains"] = [{"name": f"lists{i}.example.org"}]
    # One storage host (database and Mailman's shared data) and one active back-end, the others
    # standbys: the topology refuses several back-ends without them.
    groups["db"] = groups["nfs_server"] = ["store0"]
    hostvars["store0"] = {"mailstack__address": f"10.{len(SITE) + 1}.0.1", **SECRET}
    hostvars[groups["mailman_core"][0]]["mailstack__active_backend"] = True
    return groups, hostvars


# --------------------------------------------------------------------------------------------
# The measurement


def median_seconds(func: Callable[[], Any], repeats: int) -> float:
    func()  # warm-up (imports, regex compilation)
    return statistics.median(_time(func, repeats))


def measure_site(repeats: int = 5) -> list[tuple[str, int, float]]:
    """(what, instances, median seconds per call) for every step."""
    pf = load_filters()
    ms = load_site()
    variables = role_variables()
    inputs = site_inputs(variables)
    rows: list[tuple[str, int, float]] = []

    rows.append(
        (
            "Ansible templating of the role's inputs (one host)",
            0,
            median_seconds(lambda: template_inputs(variables, {}), repeats),
        )
    )
    per_kind: dict[str, tuple[int, float]] = {}
    for kind, data in inputs.items():
        count = len(pf.postfix_instances(data))
        seconds = median_seconds(lambda data=data: pf.postfix_instances(data), repeats)
        per_kind[kind] = (count, seconds)
        rows.append((f"postfix_instances, {kind}", count, seconds))

    def whole_site() -> None:
        for kind, hosts in SITE.items():
            for _ in range(hosts):
                pf.postfix_instances(inputs[kind])

    total = sum(SITE[k] * per_kind[k][0] for k in SITE)
    rows.append(
        (f"postfix_instances, the site ({sum(SITE.values())} hosts)", total, median_seconds(whole_site, 1))
    )

    groups, hostvars = site_inventory()
    rows.append(
        (
            f"topology, the site's inventory ({len(hostvars)} hosts)",
            0,
            median_seconds(lambda: ms.topology(groups, hostvars), repeats),
        )
    )

    # The pieces, for one postfix-out instance of the site.
    out = next(i for i in pf.postfix_instances(inputs["mailman_core"]) if i["name"] == "postfix-out")
    base = inputs["mailman_core"]
    profile = base["postfix__profiles"]["loopback_unchecked"]
    host_layer = [
        {"name": "smtpd_banner", "value": "$myhostname ESMTP out"},
        {"name": "biff", "state": "absent"},
    ]
    rows.append(
        (
            "postfix_merge_params (role, profile, host layer)",
            1,
            median_seconds(
                lambda: pf.postfix_merge_params([base["postfix__maincf"], profile["maincf"], host_layer]),
                repeats,
            ),
        )
    )
    rows.append(
        (
            "postfix_merge_services (Debian base, profile, host layer)",
            1,
            median_seconds(
                lambda: pf.postfix_merge_services(
                    [
                        base["__postfix_base_mastercf"],
                        profile["mastercf"],
                        [{"name": "smtp", "type": "inet", "maxproc": 50}],
                    ]
                ),
                repeats,
            ),
        )
    )
    rows.append(
        ("postfix_main_cf (render)", 1, median_seconds(lambda: pf.postfix_main_cf(out["maincf"]), repeats))
    )
    rows.append(
        (
            "postfix_master_cf (render)",
            1,
            median_seconds(lambda: pf.postfix_master_cf(out["services"]), repeats),
        )
    )
    layers = [[{"name": f"entry{i}", "value": i} for i in range(100)] for _ in range(3)]
    rows.append(
        (
            "merge_layers (3 layers x 100 entries)",
            0,
            median_seconds(lambda: ms.merge_layers(layers, ["a", "b", "c"]), repeats),
        )
    )
    rows.append(("Ansible: one no-op task (ansible.builtin.stat) on one host", 0, ansible_task_seconds()))
    for divisor in TOPOLOGY_DIVISORS:
        hosts = len(site_inventory(divisor)[1])
        for once in (False, True):
            how = "derived once per play" if once else "derived at each use"
            what = f"Ansible: one task using the topology on each of {hosts} hosts, {how}"
            rows.append((what, 0, topology_task_seconds(divisor, once)))
    return rows


# The site divided by 16 and by 8 (53 and 106 hosts): the topology through Ansible (the whole site,
# derived at each use, would take minutes per task).
TOPOLOGY_DIVISORS = (16, 8)


def playbook_seconds(
    plays: list[dict[str, Any]], inventory: str, tmp: str, env: dict[str, str] | None = None
) -> float:
    """Wall seconds of ansible-playbook running `plays` (written to tmp/play.yml) on inventory,
    with the project's ansible.cfg, a new empty ANSIBLE_HOME inside tmp (every run starts alike)
    and `env` on top; raises when the play fails."""
    book = Path(tmp) / "play.yml"
    book.write_text(yaml.safe_dump(plays))
    run_env = {
        **os.environ,
        "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"),
        "ANSIBLE_HOME": tempfile.mkdtemp(prefix="home-", dir=tmp),
        **(env or {}),
    }
    cmd = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", inventory, str(book)]
    start = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=run_env, check=True, capture_output=True)
    return time.perf_counter() - start


def per_task_seconds(
    play: Callable[[int], list[dict[str, Any]]],
    inventory: str,
    tmp: str,
    *,
    tasks: int,
    base: int = 0,
    env: dict[str, str] | None = None,
) -> float:
    """Seconds one task costs: play(base + tasks) against play(base), divided by tasks."""
    more = playbook_seconds(play(base + tasks), inventory, tmp, env)
    return (more - playbook_seconds(play(base), inventory, tmp, env)) / tasks


def topology_task_seconds(divisor: int, once: bool, tasks: int = 3) -> float:
    """Seconds one task that uses mailstack__topology costs on every host of the site divided by
    divisor (Ansible's linear strategy, local connection, the project's ansible.cfg otherwise): with
    once the real playbooks/topology.yml first (the fact, derived once per run), else the filter as a
    play variable (templated again at each use); the difference between playbooks with and without
    `tasks` such debug tasks, divided by `tasks`."""
    groups, hostvars = site_inventory(divisor)
    children = {g: {"hosts": {h: hostvars[h] for h in hosts}} for g, hosts in groups.items()}
    children["nfs_server"] = {"hosts": dict.fromkeys(groups["nfs_server"])}  # store0 is in db already

    def play(count: int) -> list[dict[str, Any]]:
        one: dict[str, Any] = {
            "name": "Tasks using the topology",
            "hosts": "all",
            "connection": "local",
            "gather_facts": False,
            "tasks": [{"name": "Not using it", "ansible.builtin.debug": {"msg": "{{ inventory_hostname }}"}}],
        }
        one["tasks"] += [
            {"name": f"Using it {i}", "ansible.builtin.debug": {"msg": "{{ mailstack__topology.db_port }}"}}
            for i in range(count)
        ]
        if once:
            return [{"ansible.builtin.import_playbook": str(ROOT / "playbooks" / "topology.yml")}, one]
        one["vars"] = {"mailstack__topology": "{{ groups | mailstack.site.topology(hostvars) }}"}
        return [one]

    env = {"ANSIBLE_STRATEGY": "linear", "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    with tempfile.TemporaryDirectory(prefix="bench-topology-") as tmp:
        inventory = str(Path(tmp) / "inventory.yml")
        Path(inventory).write_text(yaml.safe_dump({"all": {"children": children}}))
        return per_task_seconds(play, inventory, tmp, tasks=tasks, env=env)


def ansible_task_seconds(tasks: int = 20) -> float:
    """Seconds one ansible.builtin.stat task costs on one host (local connection): the difference
    between playbooks of 1 and 1 + `tasks` tasks, divided by `tasks`."""

    def play(count: int) -> list[dict[str, Any]]:
        stats = [{"name": f"Stat {i}", "ansible.builtin.stat": {"path": "/"}} for i in range(count)]
        one = {"name": "No-op tasks", "hosts": "localhost", "connection": "local", "gather_facts": False}
        return [{**one, "tasks": stats}]

    with tempfile.TemporaryDirectory(prefix="bench-filters-") as tmp:
        return per_task_seconds(play, "localhost,", tmp, tasks=tasks, base=1)


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}" if seconds < 0.01 else f"{seconds * 1e3:.1f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--repeats", type=int, default=5, help="runs per step; the median is shown (default 5)"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks alone")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from benchlib import DOCS, bar_chart, machine, markdown_table, text_table, write_section  # noqa: PLC0415

    load_before = machine()
    start = time.monotonic()
    rows = measure_site(args.repeats)
    elapsed = time.monotonic() - start
    header = ["step", "instances", "ms per call", "ms per instance"]
    table = [[what, str(n or "-"), _ms(s), _ms(s / n) if n else "-"] for what, n, s in rows]
    print(text_table(header, table))
    print(f"{elapsed:.1f} s in all; before: {load_before}; after: {machine()}")
    if args.no_write:
        return 0
    site = next(s for what, n, s in rows if what.startswith("postfix_instances, the site"))
    total = next(n for what, n, _ in rows if what.startswith("postfix_instances, the site"))
    templating = next(s for what, _, s in rows if what.startswith("Ansible templating"))
    topology = next(s for what, _, s in rows if what.startswith("topology, "))
    many = next(s for what, _, s in rows if what.endswith("1,000 instances"))
    task = next(s for what, _, s in rows if what.startswith("Ansible: one no-op"))
    hosts = sum(SITE.values())
    topo_rows = [(re.search(r"on each of (\d+) hosts", what), what, sec) for what, _, sec in rows]
    lazy = {int(m[1]): sec for m, what, sec in topo_rows if m and what.endswith("at each use")}
    fact = {int(m[1]): sec for m, what, sec in topo_rows if m and what.endswith("once per play")}
    body = [
        "## Filter rendering (issue 15, part 4)",
        "",
        f"Written by `bench/filters.py --repeats {args.repeats}` on "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {load_before} (before), "
        f"{machine()} (after); the figures are CPU time on this machine and scale with its load.",
        "",
        "The real filters of `filter_plugins/` on the postfix role's real defaults (every profile, "
        "rspamd's milter as a dependent profile), templated by Ansible's own `Templar` as the role "
        "does. The site: 100 MX nodes, 150 list back-ends (primary + `postfix-out`, which spreads "
        "over all 600 relays: a 600-entry `randmap` and `smtp_fallback_relay`), 600 relays: "
        f"1,000 instances on 850 hosts. Medians of {args.repeats} runs (the whole site: one run). "
        "The last rows are Ansible itself: one no-op task on one host, and one task using the "
        "topology on every host of a smaller site (the site's groups divided by 16 and by 8; "
        "linear strategy, local connection).",
        "",
        markdown_table(header, table),
        f"All 1,000 instances merge, check and render in {site:.1f} s of controller CPU "
        f"({site / total * 1e3:.1f} ms per instance; one host with 1,000 instances: "
        f"{many / 1000 * 1e3:.1f} ms each, so the cost is linear). Per host of the site that is "
        f"{site / hosts * 1e3:.0f} ms, against {task * 1e3:.0f} ms for one no-op Ansible task on one "
        f"host ({site / hosts / task:.0%} of it) and {templating * 1e3:.0f} ms for Ansible's own "
        "templating of the role's inputs; the postfix role runs about 20 tasks per host. The "
        "merge and render are a negligible share of a converge. What does grow with the site: "
        f"`mailstack.site.topology` over {len(site_inventory()[1])} hosts takes {topology * 1e3:.0f} ms "
        "per call (its "
        "firewall rules pair every relay with every back-end). Through Ansible, "
        "the topology as a play variable would be templated again at each use: one task that uses it "
        "costs "
        + ", ".join(f"{lazy[h]:.1f} s on {h} hosts" for h in lazy)
        + "; as the fact `playbooks/topology.yml` sets once per run (what every entry playbook imports "
        "first), "
        + ", ".join(f"{fact[h]:.1f} s" for h in fact)
        + " (the last rows).",
        "",
    ]
    png = DOCS / "filters.png"
    per_call = [(what, s * 1e3) for what, _, s in rows]
    title = "Filter rendering and Ansible, ms per call (bench/filters.py, medians, log scale)"
    segments = [("ms per call", [ms for _, ms in per_call])]
    if bar_chart(png, title, [what for what, _ in per_call], segments, "milliseconds per call", log=True):
        body += [f"![Filter rendering]({png.name})", ""]
    else:
        body += ["(No chart: matplotlib is not installed.)", ""]
    path = write_section("filters", "\n".join(body))
    print(f"written: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
