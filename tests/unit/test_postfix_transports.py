"""plugin_utils/postfix_transports.py: the relay delivery policy as one structure.

postfix__relay_transports and its inventory layers become the relay instance's transport_maps,
its <transport>_destination_* limits and its master.cf clones of smtp; one line in a group layer
changes one limit.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from support.paths import ROOT

PROFILE_RELAY = ROOT / "roles" / "postfix" / "defaults" / "main" / "profile_relay.yml"
SMTP = {"name": "smtp", "type": "unix", "chroot": "y", "command": "smtp"}


def relay_defaults() -> dict[str, Any]:
    """The role's relay profile and transports, as defaults/main/profile_relay.yml has them."""
    data: dict[str, Any] = yaml.safe_load(PROFILE_RELAY.read_text())
    return data


def inputs(**changes: Any) -> dict[str, Any]:
    """postfix_instances' input for a relay host: the role's real relay profile and transports."""
    defaults = relay_defaults()
    base: dict[str, Any] = {
        "__postfix_base_mastercf": [
            {"name": "smtp", "type": "inet", "private": "n", "chroot": "y", "command": "smtpd"},
            SMTP,
            {"name": "relay", "type": "unix", "chroot": "y", "command": "smtp"},
        ],
        "postfix__maincf": [{"name": "compatibility_level", "value": "3.6"}],
        "postfix__mastercf": [],
        "postfix__profiles": {
            "relay": defaults["postfix__profile_relay"],
            "plain": {"maincf": [{"name": "biff", "value": False}], "mastercf": []},
        },
        "postfix__custom_profiles": {},
        "postfix__dependent_profiles": {},
        "postfix__instances": [{"name": "-", "profile": "relay", "mynetworks": ["10.0.0.0/24"]}],
        "postfix__dependent_instances": [],
        "postfix__group_instances": [],
        "postfix__host_instances": [],
        "postfix__relay_transports": defaults["postfix__relay_transports"],
        "postfix__group_relay_transports": defaults["postfix__group_relay_transports"],
        "postfix__host_relay_transports": defaults["postfix__host_relay_transports"],
        "postfix__myhostname": "relay1.example.test",
        "postfix__instance_group": "mta",
        "postfix__tls_self_signed": False,
        "postfix__staging_dir": "/var/lib/mailstack/postfix",
    }
    base.update(changes)
    return base


def primary(pf: ModuleType, **changes: Any) -> dict[str, Any]:
    instance: dict[str, Any] = pf.postfix_instances(inputs(**changes))[0]
    return instance


def params(instance: dict[str, Any]) -> dict[str, Any]:
    return {p["name"]: p["value"] for p in instance["maincf"]}


def clones(instance: dict[str, Any]) -> list[str]:
    return [
        s["name"]
        for s in instance["services"]
        if s["command"] == "smtp" and s["name"] not in ("smtp", "relay")
    ]


def test_the_role_defaults_render_the_transport_map_limits_and_clones(pf: ModuleType) -> None:
    relay = primary(pf)
    p = params(relay)
    assert p["transport_maps"] == (
        "inline:{ { gmail.com = provider_google: }, { googlemail.com = provider_google: }, "
        "{ outlook.com = provider_microsoft: }, { hotmail.com = provider_microsoft: }, "
        "{ live.com = provider_microsoft: }, { msn.com = provider_microsoft: }, "
        "{ yahoo.com = provider_yahoo: }, { ymail.com = provider_yahoo: }, { aol.com = provider_yahoo: } }"
    )
    assert {k: v for k, v in p.items() if "_destination_" in k and not k.startswith("smtp_")} == {
        "provider_google_destination_concurrency_limit": 10,
        "provider_microsoft_destination_concurrency_limit": 5,
        "provider_yahoo_destination_concurrency_limit": 5,
        "slow_destination_concurrency_limit": 1,
        "slow_destination_rate_delay": "2s",
    }
    assert clones(relay) == ["provider_google", "provider_microsoft", "provider_yahoo", "slow"]
    assert "provider_google   unix  -       -       y       -       -       smtp" in relay[
        "master_cf"
    ].replace("provider_google unix -   -", "provider_google   unix  -       -")
    # The reason is written above the first limit of each transport.
    assert (
        "# Half the default; a burst of new connections from one address gets 421 4.7.28.\n"
        "provider_google_destination_concurrency_limit = 10\n" in relay["main_cf"]
    )


def test_one_line_in_the_group_layer_changes_gmail_concurrency_only(pf: ModuleType) -> None:
    before = primary(pf)
    after = primary(pf, postfix__group_relay_transports=[{"name": "provider_google", "concurrency": 20}])
    changed = {k for k in params(after) if params(after)[k] != params(before).get(k)}
    assert changed == {"provider_google_destination_concurrency_limit"}
    assert params(after)["provider_google_destination_concurrency_limit"] == 20
    assert after["services"] == before["services"]
    assert "provider_google_destination_concurrency_limit = 20\n" in after["main_cf"]


def test_a_new_transport_is_one_entry(pf: ModuleType) -> None:
    relay = primary(
        pf,
        postfix__group_relay_transports=[
            {
                "name": "provider_gmx",
                "domains": ["gmx.de", "GMX.net"],
                "concurrency": 4,
                "recipient_limit": 50,
            },
        ],
    )
    p = params(relay)
    assert p["transport_maps"].endswith("{ gmx.de = provider_gmx: }, { gmx.net = provider_gmx: } }")
    assert p["provider_gmx_destination_concurrency_limit"] == 4
    assert p["provider_gmx_destination_recipient_limit"] == 50
    assert "provider_gmx_destination_rate_delay" not in p
    assert clones(relay)[-1] == "provider_gmx"


def test_host_layer_wins_and_absent_removes_a_transport_with_its_domains(pf: ModuleType) -> None:
    relay = primary(
        pf,
        postfix__group_relay_transports=[{"name": "slow", "domains": ["example.net"]}],
        postfix__host_relay_transports=[
            {"name": "provider_yahoo", "state": "absent"},
            {"name": "slow", "rate_delay": "5s"},
        ],
    )
    p = params(relay)
    assert "yahoo.com" not in p["transport_maps"]
    assert "{ example.net = slow: }" in p["transport_maps"]
    assert p["slow_destination_rate_delay"] == "5s"
    assert not any(k.startswith("provider_yahoo") for k in p)
    assert "provider_yahoo" not in clones(relay)


def test_no_domain_at_all_renders_no_transport_map(pf: ModuleType) -> None:
    none = [
        {"name": name, "domains": []} for name in ("provider_google", "provider_microsoft", "provider_yahoo")
    ]
    relay = primary(pf, postfix__group_relay_transports=none)
    assert "transport_maps" not in params(relay)
    assert "slow" in clones(relay)


def test_instance_layer_still_overrides_a_generated_parameter(pf: ModuleType) -> None:
    relay = primary(
        pf,
        postfix__host_instances=[
            {"name": "-", "maincf": [{"name": "provider_google_destination_concurrency_limit", "value": 3}]}
        ],
    )
    assert params(relay)["provider_google_destination_concurrency_limit"] == 3


def test_only_instances_of_a_transport_profile_get_them(pf: ModuleType) -> None:
    plain = primary(pf, postfix__instances=[{"name": "-", "profile": "plain"}])
    assert "transport_maps" not in params(plain)
    assert clones(plain) == []


ERRORS = [
    (
        {"postfix__group_relay_transports": [{"name": "provider_google", "concurrency": "many"}]},
        "postfix_instances: postfix__group_relay_transports[0]: transport 'provider_google': "
        "concurrency must be a positive integer, got 'many'",
    ),
    (
        {"postfix__group_relay_transports": [{"name": "provider_google", "concurrency": 0}]},
        "concurrency must be a positive integer, got 0",
    ),
    (
        {"postfix__host_relay_transports": [{"name": "slow", "rate_delay": "2 seconds"}]},
        "postfix__host_relay_transports[0]: transport 'slow': rate_delay must be a Postfix time",
    ),
    (
        {"postfix__group_relay_transports": [{"name": "Provider-X", "domains": ["x.example"]}]},
        "postfix__group_relay_transports[0]: name must be a transport name",
    ),
    (
        {"postfix__group_relay_transports": [{"name": "provider_x", "domain": ["x.example"]}]},
        "transport 'provider_x': unknown field(s) domain",
    ),
    (
        {"postfix__group_relay_transports": [{"name": "provider_x", "domains": "x.example"}]},
        "transport 'provider_x': domains must be a list of domain names, got str",
    ),
    (
        {"postfix__group_relay_transports": [{"name": "provider_x", "domains": ["not a domain"]}]},
        "transport 'provider_x': domains: 'not a domain' is not a domain name",
    ),
    (
        {"postfix__group_relay_transports": [{"name": "slow", "domains": ["Gmail.com"]}]},
        "postfix__group_relay_transports[0]: transport 'slow': domain 'Gmail.com' is already carried by "
        "transport 'provider_google' (postfix__relay_transports[0]); a domain takes one transport",
    ),
    (
        {"postfix__group_relay_transports": [{"name": "relay", "domains": ["x.example"]}]},
        "transport 'relay': is the name of a stock master.cf service",
    ),
    (
        {"postfix__group_relay_transports": [{"name": "slow"}, {"name": "slow", "concurrency": 2}]},
        "postfix__group_relay_transports[1]: names the same entry as postfix__group_relay_transports[0]",
    ),
    (
        {"postfix__host_relay_transports": {"provider_google": {"concurrency": 20}}},
        "postfix_instances: postfix__host_relay_transports: must be a list, got dict",
    ),
    (
        {
            "postfix__custom_profiles": {
                "relay": {"maincf": [], "mastercf": [], "relay_transports": "yes"},
            }
        },
        "postfix__custom_profiles.relay: relay_transports must be true or false, got 'yes'",
    ),
    (
        {"postfix__custom_profiles": {"relay": {"maincf": [], "transports": True}}},
        "postfix__custom_profiles.relay: unknown field(s) transports; "
        "expected maincf, mastercf, relay_transports",
    ),
]


@pytest.mark.parametrize(("changes", "message"), ERRORS, ids=[m[:60] for _, m in ERRORS])
def test_bad_transports_name_the_variable_and_entry(
    pf: ModuleType, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(AnsibleFilterError) as error:
        pf.postfix_instances(inputs(**changes))
    assert message in str(error.value)
