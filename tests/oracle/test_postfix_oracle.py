"""Oracle tests: the real Postfix tools read what the filters render.

For Debian's stock master.cf with a realistic main.cf, for every profile of roles/postfix
(assembled through Ansible by postfix_instances from the role's own inputs), for two roles that
each add a milter to one instance, and for generated service lists,
`postconf -c DIR -M`, `-F`, `-P` and `-n` must show exactly the services, fields, overrides and
parameters of the data, without a warning, and `postfix -c DIR check` must pass where the
configuration is complete.  One container for the session (conftest.py); no network.
Also the inputs of issue 16 that the filters accept (support/postfix_cases.py), read back exactly.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from support.oracle import Oracle
from support.paths import DATA, ROOT
from support.postfix_cases import (
    ACCEPTED_PARAMS,
    ACCEPTED_SERVICES,
    REAL_PARAMS,
    option_text,
    services,
    value_text,
)

pytestmark = pytest.mark.docker

ROLE = ROOT / "roles" / "postfix"
SECTION = "=== mailstack-oracle "


# ------------------------------------------------------------------------------------------------
# What Postfix printed, parsed independently of the filter module


def blank(text: str) -> bool:
    return any(char in text for char in " \t\r\n")


def blank_runs(text: str) -> list[str]:
    """Split at runs of Postfix's blanks (ASCII only, unlike str.split())."""
    return [part for part in re.split(r"[ \t\r\n]+", text) if part]


def expected_command_field(service: dict[str, Any]) -> str:
    """The command field as `postconf -F` prints it (postconf_master.c, pcf_print_master_field).

    postconf braces an -o value (as {name=value}) and a later argument when they contain blanks,
    but prints an argument raw while it is still scanning daemon options: every leading
    argument that starts with '-' and the first one that does not.  That is how postconf
    displays the argument list; master(8) itself reads the braces of the file.
    """
    parts = [service["command"]]
    for name, value in (service.get("options") or {}).items():
        if value is None:
            continue
        setting = f"{name}={option_text(value)}"
        parts += ["-o", f"{{{setting}}}" if blank(setting) else setting]
    in_options = True
    for arg in service.get("args") or []:
        if in_options:
            in_options = arg.startswith("-") and arg != "--"
            parts.append(arg)
        else:
            parts.append(f"{{{arg}}}" if blank(arg) else arg)
    return " ".join(parts)


def run_postfix(oracle: Oracle, confdir: str, check: bool) -> dict[str, str]:
    """One docker exec: postconf -M, -F, -P, -n (and postfix check); stdout per section."""
    script = "set -e\n" + "".join(
        f"echo '{SECTION}{flag}'; postconf -c {confdir} {flag}\n" for flag in ("-M", "-F", "-P", "-n")
    )
    if check:
        script += f"echo '{SECTION}check'; postfix -c {confdir} check\n"
    res = oracle.sh(script)
    assert res.returncode == 0 and not res.stderr.strip(), f"Postfix said:\n{res.stderr}\n{res.stdout}"
    sections: dict[str, str] = {}
    for chunk in res.stdout.split(SECTION)[1:]:
        flag, _, body = chunk.partition("\n")
        sections[flag] = body
    return sections


def name_values(text: str) -> list[tuple[str, str]]:
    """`name = value` lines; lines end at "\n" only.  postconf -F writes a long value on its own
    line, indented by four spaces, after `name = `."""
    pairs: list[tuple[str, str]] = []
    for line in (line for line in text.split("\n") if line):
        if line.startswith("    ") and pairs and pairs[-1][1] == "":
            pairs[-1] = (pairs[-1][0], line[4:])
            continue
        name, sep, value = line.partition(" =")
        assert sep, f"unexpected postconf line {line!r}"
        pairs.append((name, value.removeprefix(" ")))
    return pairs


def expected_main_value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(expected_main_value(item) for item in value)
    return str(value)


def assert_postfix_sees(
    oracle: Oracle,
    pf: ModuleType,
    label: str,
    params: list[dict[str, Any]],
    svcs: list[dict[str, Any]],
    *,
    check: bool = False,
) -> None:
    """Render, let Postfix read, and compare with the data field by field."""
    host, confdir = oracle.new_dir(label)
    (host / "main.cf").write_text(pf.postfix_main_cf(params))
    (host / "master.cf").write_text(pf.postfix_master_cf(svcs))
    out = run_postfix(oracle, confdir, check)
    assert_sections_match(out, confdir, params, svcs)
    if check:
        assert out["check"] == ""


def assert_sections_match(
    out: dict[str, str], confdir: str, params: list[dict[str, Any]], svcs: list[dict[str, Any]]
) -> None:
    """What postconf printed (-F, -P, -n; -M when present) is exactly the data."""
    present = [s for s in svcs if s.get("state", "present") == "present"]

    # -M: one entry per service, in the order of the data, with the seven fixed fields.
    entries = [blank_runs(line)[:7] for line in out.get("-M", "").split("\n") if line]
    want_entries = [
        [
            s["name"],
            s["type"],
            *(flag_text(s.get(f, "-")) for f in ("private", "unpriv", "chroot")),
            str(s.get("wakeup", "-")),
            str(s.get("maxproc", "-")),
        ]
        for s in present
    ]
    assert "-M" not in out or entries == want_entries

    # -F: every field of every service; the command field holds command, overrides and args.
    fields: dict[str, dict[str, str]] = {}
    for key, value in name_values(out["-F"]):
        svc_key, field = key.rsplit("/", 1)
        fields.setdefault(svc_key, {})[field] = value
    assert list(fields) == [f"{s['name']}/{s['type']}" for s in present]
    for s in present:
        got = fields[f"{s['name']}/{s['type']}"]
        command = got.pop("command")
        assert got == {
            "service": s["name"],
            "type": s["type"],
            "private": flag_text(s.get("private", "-")),
            "unprivileged": flag_text(s.get("unpriv", "-")),
            "chroot": flag_text(s.get("chroot", "-")),
            "wakeup": str(s.get("wakeup", "-")),
            "process_limit": str(s.get("maxproc", "-")),
        }
        assert command == expected_command_field(s)

    # -P: the overrides as Postfix applies them (it prints runs of whitespace as one space).
    got_p = {key: value for key, value in name_values(out["-P"])}
    want_p = {
        f"{s['name']}/{s['type']}/{k}": " ".join(blank_runs(v))
        for s in present
        for k, v in ((k, option_text(v)) for k, v in (s.get("options") or {}).items() if v is not None)
    }
    assert got_p == want_p

    # -n: exactly the parameters of the data (postconf -c adds config_directory).
    got_n = dict(name_values(out["-n"]))
    assert got_n.pop("config_directory") == confdir
    # -n: postconf prints a run of blanks inside a value as one space (as -P does).
    want_n = {
        p["name"]: " ".join(blank_runs(expected_main_value(p["value"])))
        for p in params
        if p.get("state", "present") == "present"
    }
    assert got_n == want_n


def flag_text(value: Any) -> str:
    if isinstance(value, bool):
        return "y" if value else "n"
    return str(value)


# ------------------------------------------------------------------------------------------------
# Debian's stock master.cf and a realistic main.cf

REALISTIC_MAIN = [
    {"name": "compatibility_level", "value": "3.6"},
    {"name": "myhostname", "value": "mx1.example.test", "comment": "Who we are."},
    {"name": "mydestination", "value": []},
    {"name": "biff", "value": False},
    {"name": "smtpd_helo_required", "value": True},
    {"name": "mynetworks", "value": ["127.0.0.0/8", "[::1]/128", "192.0.2.0/24"]},
    {"name": "relay_domains", "value": ["lists.example.test", "lists2.example.test"]},
    {
        "name": "smtpd_recipient_restrictions",
        "value": [
            "permit_mynetworks",
            "reject_non_fqdn_recipient",
            "reject_unauth_destination",
            "check_policy_service { unix:private/policy, timeout=10s }",
            "reject_unlisted_recipient",
        ],
    },
    {"name": "smtpd_milters", "value": ["inet:127.0.0.1:11332"]},
    {"name": "milter_default_action", "value": "accept"},
    {"name": "smtpd_banner", "value": "$myhostname ESMTP $mail_name (Debian/GNU)"},
    {"name": "default_process_limit", "value": 200},
    {"name": "in_flow_delay", "value": 0},
    {"name": "transport_maps", "value": "hash:/etc/postfix/transport"},
    {
        "name": "sender_dependent_default_transport_maps",
        "value": "randmap:{smtp:[relay1.example.test], smtp:[relay2.example.test]}",
    },
    {"name": "recipient_delimiter", "value": "+"},
    {"name": "alias_maps", "value": "", "state": "absent"},
]


def test_debian_master_cf_and_realistic_main_cf(oracle: Oracle, pf: ModuleType) -> None:
    stock = pf.postfix_parse_master_cf((DATA / "debian-master.cf").read_text())
    assert len(stock) == 31
    assert_postfix_sees(oracle, pf, "debian", REALISTIC_MAIN, stock, check=True)


def test_debian_master_cf_rendered_equals_stock_for_postfix(oracle: Oracle, pf: ModuleType) -> None:
    """Postfix reads our rendering of Debian's file exactly as it reads Debian's file itself."""
    host, confdir = oracle.new_dir("stock")
    (host / "main.cf").write_text("compatibility_level = 3.6\n")
    (host / "master.cf").write_text((DATA / "debian-master.cf").read_text())
    ours_host, ours = oracle.new_dir("ours")
    (ours_host / "main.cf").write_text("compatibility_level = 3.6\n")
    stock = pf.postfix_parse_master_cf((DATA / "debian-master.cf").read_text())
    (ours_host / "master.cf").write_text(pf.postfix_master_cf(stock))
    for flag in ("-M", "-F", "-P"):
        assert oracle.postconf(confdir, flag) == oracle.postconf(ours, flag)


def test_merged_layers_with_overrides(oracle: Oracle, pf: ModuleType) -> None:
    stock = pf.postfix_parse_master_cf((DATA / "debian-master.cf").read_text())
    layers = [
        stock,
        [
            {"name": "smtp", "type": "inet", "command": "postscreen", "maxproc": 1},
            {
                "name": "smtpd",
                "type": "pass",
                "chroot": True,
                "command": "smtpd",
                "options": {
                    "smtpd_milters": ["inet:127.0.0.1:11332"],
                    "smtpd_banner": "$myhostname ESMTP lists",
                },
            },
            {"name": "relay", "type": "unix", "options": {"syslog_name": None, "smtp_helo_timeout": "5s"}},
            {"name": "maildrop", "type": "unix", "state": "absent"},
        ],
        [
            {
                "name": "127.0.0.1:10025",
                "type": "inet",
                "private": False,
                "chroot": False,
                "command": "smtpd",
                "options": {
                    "content_filter": [],
                    "receive_override_options": ["no_unknown_recipient_checks", "no_header_body_checks"],
                },
                "comment": "after-filter listener",
            }
        ],
    ]
    merged = pf.postfix_merge_services(layers, "postfix-x")
    assert_postfix_sees(oracle, pf, "merged", REALISTIC_MAIN, merged, check=True)


# ------------------------------------------------------------------------------------------------
# The profiles of roles/postfix, assembled through Ansible by the role's own postfix_instances

# Each profile on the primary instance, from the role's own inputs (vars/main.yml __postfix_inputs,
# the role's defaults); no self-signed certificate (there is no file for postfix check to find).
# "two_milters": rspamd's real export plus a second exporting role's, both adding to smtpd_milters.
# "relay_gmail20": the relay profile with the one-line override of Gmail's concurrency.
PROFILE_PLAYBOOK = """\
- name: Assemble each profile of roles/postfix with postfix_instances, as the role does
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    signer_export:
      inbound_scanning:
        maincf:
          - {{name: smtpd_milters, items: ['inet:127.0.0.1:8891']}}
  tasks:
    - name: Load the role's defaults
      ansible.builtin.include_vars:
        dir: {role}/defaults/main
    - name: Load the role's internal vars (__postfix_inputs)
      ansible.builtin.include_vars:
        file: {role}/vars/main.yml
    - name: Load rspamd's defaults (rspamd__postfix__dependent_profiles)
      ansible.builtin.include_vars:
        file: {rspamd}/defaults/main.yml
    - name: Load rspamd's internal vars (__rspamd_postfix_maincf)
      ansible.builtin.include_vars:
        file: {rspamd}/vars/main.yml
    - name: Write the assembled primary instance of every profile, and of the two-milter case
      ansible.builtin.copy:
        dest: {out}
        mode: "0644"
        content: >-
          {{%- set base = __postfix_inputs | combine({{'postfix__tls_self_signed': false}}) -%}}
          {{%- set result = {{}} -%}}
          {{%- for name in postfix__profiles -%}}
          {{%-   set primary = {{'name': '-', 'profile': name}}
                              | combine({{'port': 10025}} if name == 'loopback_unchecked' else {{}}) -%}}
          {{%-   set inputs = base | combine({{'postfix__instances': [primary]}}) -%}}
          {{%-   set _ = result.update({{name: (inputs | mailstack.site.postfix_instances)[0]}}) -%}}
          {{%- endfor -%}}
          {{%- set inputs = base | combine({{
                 'postfix__instances': [{{'name': '-', 'profile': 'inbound_scanning'}}],
                 'postfix__dependent_profiles': [rspamd__postfix__dependent_profiles, signer_export]}}) -%}}
          {{%- set _ = result.update({{'two_milters': (inputs | mailstack.site.postfix_instances)[0]}}) -%}}
          {{%- set inputs = base | combine({{
                 'postfix__instances': [{{'name': '-', 'profile': 'relay'}}],
                 'postfix__group_relay_transports': [{{'name': 'provider_google', 'concurrency': 20}}]}}) -%}}
          {{%- set _ = result.update({{'relay_gmail20': (inputs | mailstack.site.postfix_instances)[0]}}) -%}}
          {{%- set refused = ['10.0.0.51', 'fd00::52'] | mailstack.site.relay_sender_restrictions(
                 ['lists.example.test', 'lists2.example.test']) -%}}
          {{%- set inputs = base | combine({{
                 'postfix__instances': [{{'name': '-', 'profile': 'relay', 'maincf': refused}}]}}) -%}}
          {{%- set web_senders = (inputs | mailstack.site.postfix_instances)[0] -%}}
          {{%- set _ = result.update({{'relay_web_senders': web_senders}}) -%}}
          {{{{ result | to_json }}}}
"""
EXPECTED_PROFILES = {"inbound_scanning", "list_inbound", "loopback_unchecked", "relay"}
CASES = {"two_milters", "relay_gmail20", "relay_web_senders"}  # not profiles: assembled cases of the playbook


@pytest.fixture(scope="module")
def role_profiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if not (ROLE / "defaults").is_dir():
        pytest.fail(f"{ROLE}/defaults is missing: the profiles of the postfix role cannot be checked")
    work = tmp_path_factory.mktemp("profiles")
    out = work / "profiles.json"
    playbook = work / "profiles.yml"
    playbook.write_text(PROFILE_PLAYBOOK.format(role=ROLE, rspamd=ROOT / "roles" / "rspamd", out=out))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_HOME=str(work / "ansible-home"),
        ANSIBLE_NOCOLOR="1",
    )
    bindir = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin"
    res = subprocess.run(
        [str(bindir / "ansible-playbook"), "-i", "localhost,", str(playbook)],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    profiles: dict[str, Any] = json.loads(out.read_text())
    return profiles


def assert_instance_as_postfix_sees_it(
    oracle: Oracle, pf: ModuleType, label: str, instance: dict[str, Any]
) -> None:
    """The texts postfix_instances rendered are the rendering of its checked data, and Postfix agrees."""
    assert instance["services"], "a master.cf is never empty (the role's base services come first)"
    assert instance["main_cf"] == pf.postfix_main_cf(instance["maincf"], instance["name"])
    assert instance["master_cf"] == pf.postfix_master_cf(instance["services"], instance["name"])
    assert_postfix_sees(oracle, pf, label, instance["maincf"], instance["services"], check=True)


def case_dir(oracle: Oracle, pf: ModuleType, role_profiles: dict[str, Any], case: str, label: str) -> str:
    """The assembled CASE checked as Postfix sees it, then its rendered files in a new directory of the
    oracle's container (returned, for postconf and postmap queries)."""
    instance = role_profiles[case]
    assert_instance_as_postfix_sees_it(oracle, pf, label, instance)
    host, confdir = oracle.new_dir(f"{label}-text")
    (host / "main.cf").write_text(instance["main_cf"])
    (host / "master.cf").write_text(instance["master_cf"])
    return confdir


def test_role_defines_the_four_profiles(role_profiles: dict[str, Any]) -> None:
    profile_files = {p.stem.removeprefix("profile_") for p in (ROLE / "defaults").glob("**/profile_*.yml")}
    assert set(role_profiles) - CASES >= EXPECTED_PROFILES
    assert profile_files <= set(role_profiles)


@pytest.mark.parametrize("profile", sorted(EXPECTED_PROFILES))
def test_role_profile(oracle: Oracle, pf: ModuleType, role_profiles: dict[str, Any], profile: str) -> None:
    assert role_profiles[profile]["profile"] == profile
    assert_instance_as_postfix_sees_it(oracle, pf, f"profile-{profile}", role_profiles[profile])


def test_every_profile_file_of_the_role(
    oracle: Oracle, pf: ModuleType, role_profiles: dict[str, Any]
) -> None:
    """Profiles added later (any defaults/**/profile_*.yml) are checked too."""
    for name in sorted(set(role_profiles) - EXPECTED_PROFILES - CASES):
        assert_instance_as_postfix_sees_it(oracle, pf, f"profile-{name}", role_profiles[name])


def test_two_roles_add_a_milter_each(oracle: Oracle, pf: ModuleType, role_profiles: dict[str, Any]) -> None:
    """rspamd's export and a second role's each add a milter (items); Postfix reads both."""
    confdir = case_dir(oracle, pf, role_profiles, "two_milters", "two-milters")
    assert oracle.postconf(confdir, "-h", "smtpd_milters") == "inet:127.0.0.1:11332, inet:127.0.0.1:8891\n"


# ------------------------------------------------------------------------------------------------
# Generated data

main_params = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(REAL_PARAMS),
            "value": st.one_of(
                value_text,
                st.integers(0, 10**6),
                st.booleans(),
                st.just(""),
                st.lists(value_text, max_size=8),
            ),
        }
    ),
    max_size=10,
    unique_by=lambda p: p["name"],
)


@settings(
    max_examples=30,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate],  # no shrinking: each example is a docker exec
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=services, params=main_params)
def test_generated_data(
    oracle: Oracle, pf: ModuleType, data: list[dict[str, Any]], params: list[dict[str, Any]]
) -> None:
    assert_postfix_sees(oracle, pf, "generated", params, data)


def test_accepted_inputs_read_back_by_postconf(oracle: Oracle, pf: ModuleType) -> None:
    assert_postfix_sees(oracle, pf, "issue16", ACCEPTED_PARAMS, ACCEPTED_SERVICES)


def test_one_line_changes_gmail_concurrency_as_postfix_reads_it(
    oracle: Oracle, pf: ModuleType, role_profiles: dict[str, Any]
) -> None:
    """postfix__group_relay_transports: [{name: provider_google, concurrency: 20}] on the relay profile:
    Postfix reads 20 for Google and the defaults for the others, the clone in master.cf, and the
    transport map sends gmail.com to it (postmap -q on the rendered inline table)."""
    confdir = case_dir(oracle, pf, role_profiles, "relay_gmail20", "relay-gmail20")
    assert oracle.postconf(confdir, "-h", "provider_google_destination_concurrency_limit") == "20\n"
    assert oracle.postconf(confdir, "-h", "provider_microsoft_destination_concurrency_limit") == "5\n"
    assert oracle.postconf(confdir, "-h", "slow_destination_rate_delay") == "2s\n"
    clones = oracle.postconf(confdir, "-M", "provider_google/unix", "slow/unix").split("\n")
    assert [blank_runs(line)[:2] + blank_runs(line)[-1:] for line in clones if line] == [
        ["provider_google", "unix", "smtp"],
        ["slow", "unix", "smtp"],
    ]
    table = oracle.postconf(confdir, "-h", "transport_maps").strip()
    for domain, transport in (("gmail.com", "provider_google:"), ("aol.com", "provider_yahoo:")):
        found = oracle.sh(f"postmap -c {confdir} -q {domain} '{table}'")
        assert (found.returncode, found.stdout.strip()) == (0, transport), found.stderr
    assert oracle.sh(f"postmap -c {confdir} -q example.org '{table}'").returncode == 1


def test_a_web_client_is_refused_list_senders_as_postfix_reads_it(
    oracle: Oracle, pf: ModuleType, role_profiles: dict[str, Any]
) -> None:
    """relay_sender_restrictions on the relay profile (playbooks/relays.yml): Postfix reads the class
    and both inline tables without a warning; the client table names the class for each web node
    (IPv6 too) and nothing for a back-end, the class's table refuses the list domains and their
    subdomains only."""
    confdir = case_dir(oracle, pf, role_profiles, "relay_web_senders", "relay-web-senders")
    assert oracle.postconf(confdir, "-h", "smtpd_restriction_classes") == "mailstack_list_senders_refused\n"
    clients = oracle.postconf(confdir, "-h", "smtpd_sender_restrictions").strip()
    clients = clients.removeprefix("check_client_access ")
    for client in ("10.0.0.51", "fd00::52"):
        found = oracle.sh(f"postmap -c {confdir} -q {client} '{clients}'")
        assert (found.returncode, found.stdout.strip()) == (0, "mailstack_list_senders_refused"), found.stderr
    assert oracle.sh(f"postmap -c {confdir} -q 10.0.0.21 '{clients}'").returncode == 1
    senders = oracle.postconf(confdir, "-h", "mailstack_list_senders_refused").strip()
    senders = senders.removeprefix("check_sender_access ")
    found = oracle.sh(f"postmap -c {confdir} -q lists2.example.test '{senders}'")
    assert found.stdout.strip() == "REJECT 5.7.1 list addresses are sent by the list back-ends only", found
    assert oracle.sh(f"postmap -c {confdir} -q example.test '{senders}'").returncode == 1
