# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Assemble a host's Postfix instances from the postfix role's layers, in one documented order.

The order (role defaults, profile, dependent profiles, instance layers, computed values) is
described in docs/postfix-data-model.md; every layer goes through the one merge engine
(plugin_utils/layers.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import FilterError, is_list, type_name
from ansible_collections.mailstack.site.plugins.plugin_utils.layers import merge_layers, present
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_model import (
    PARAM_NAME,
    SERVICE_TYPES,
    STATES,
    Param,
    PostfixWhere,
    Service,
    check_instance_name,
    check_list_item,
    main_value_text,
    normalize_param,
    normalize_params,
    normalize_service,
    normalize_services,
    param_label,
    postfix_check_instances,
)
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_render import (
    postfix_main_cf,
    postfix_master_cf,
)
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_transports import (
    GENERATED,
    TRANSPORT_LAYERS,
    merge_relay_transports,
    relay_transport_layers,
    uses_relay_transports,
)

INSTANCE_LIST_FIELDS = ("maincf", "mastercf")


# --------------------------------------------------------------------------------------------
# Merging: the keys and field rules of parameters and services, for the one merge engine


def _service_key(here: PostfixWhere, entry: Mapping[str, Any]) -> tuple[str, str]:
    name, stype = entry.get("name"), entry.get("type")
    if not isinstance(name, str) or not name:
        raise here.at("service").error(
            f"name is required to merge services (key: name and type), got {name!r}"
        )
    if stype not in SERVICE_TYPES:
        raise here.at(f"service '{name}'").error(
            f"type must be one of {'|'.join(SERVICE_TYPES)}, got {stype!r}"
        )
    return name, stype


def _merge_service(current: dict[str, Any], entry: Mapping[str, Any], here: PostfixWhere) -> dict[str, Any]:
    """A later layer's fields replace earlier ones; its options merge option by option (null removes one)."""
    result = dict(current)
    for field, value in entry.items():
        if field == "options" and isinstance(value, Mapping):
            options = dict(result["options"]) if isinstance(result.get("options"), Mapping) else {}
            for opt, opt_value in value.items():
                if opt_value is None:
                    options.pop(opt, None)
                else:
                    options[opt] = opt_value
            result["options"] = options
        else:
            result[field] = value
    return result


def _param_key(here: PostfixWhere, entry: Mapping[str, Any]) -> str:
    name = entry.get("name")
    if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
        raise here.at("parameter").error(f"name must match [A-Za-z0-9_]+, got {name!r}")
    return name


def _merge_param(current: dict[str, Any], entry: Mapping[str, Any], here: PostfixWhere) -> dict[str, Any]:
    """A later layer's fields replace earlier ones; its `items` add to (or remove from) the list value."""
    result = {**current, **{field: value for field, value in entry.items() if field != "items"}}
    if entry.get("items") is not None:
        try:
            result["value"] = _apply_items(result.get("value"), entry["items"])
        except ValueError as exc:
            raise here.at(param_label(entry, 0)).error(str(exc)) from None
    return result


def _unnamed_layers(where: PostfixWhere, layers: Any) -> list[tuple[str, Any]]:
    """Layers given as a plain list (the Python API): named layers[N] in messages."""
    if layers is None:
        return []
    if not is_list(layers):
        raise where.error(f"layers must be a list of lists, got {type_name(layers)}")
    return [(f"layers[{pos}]", layer) for pos, layer in enumerate(layers)]


def _where_of(filter_name: str, *instance: str) -> Any:
    """The error context of layer entries: '<filter>: <variable>[<index>]' (and the instance, if given)."""

    def where_of(label: str, index: int | None) -> PostfixWhere:
        return PostfixWhere(f"{filter_name}: {label}" + ("" if index is None else f"[{index}]"), *instance)

    return where_of


def _check_param_value_set(here: PostfixWhere, entry: Mapping[str, Any], index: int) -> None:
    if entry.get("state", "present") != "absent" and "value" in entry and entry["value"] is None:
        raise here.at(param_label(entry, index)).error(
            "value is null; give a value, or state: absent to remove the parameter"
        )


def postfix_merge_services(layers: Any, instance: str = "-") -> list[Service]:
    """Merge layers of master.cf services by (name, type); return canonical present services."""
    where = PostfixWhere("postfix_merge_services", instance)
    check_instance_name(where, instance)
    merged = merge_layers(
        _unnamed_layers(where, layers),
        where_of=_where_of("postfix_merge_services", instance),
        key=_service_key,
        merge=_merge_service,
    )
    return normalize_services(where, present(merged))


def postfix_merge_params(layers: Any, instance: str = "-") -> list[Param]:
    """Merge layers of main.cf parameters by name; return canonical present parameters."""
    where = PostfixWhere("postfix_merge_params", instance)
    check_instance_name(where, instance)
    merged = merge_layers(
        _unnamed_layers(where, layers),
        where_of=_where_of("postfix_merge_params", instance),
        key=_param_key,
        merge=_merge_param,
        check=_check_param_value_set,
    )
    return normalize_params(where, present(merged))


# --------------------------------------------------------------------------------------------
# The assembly: every layer of the postfix role, in one documented order, to ready instances

# The role's inputs (variable names are the keys of postfix_instances' input mapping).
ASSEMBLY_INPUTS = (
    "__postfix_base_mastercf",
    "postfix__maincf",
    "postfix__mastercf",
    "postfix__profiles",
    "postfix__custom_profiles",
    "postfix__dependent_profiles",
    "postfix__instances",
    "postfix__dependent_instances",
    "postfix__group_instances",
    "postfix__host_instances",
    *TRANSPORT_LAYERS,
    "postfix__myhostname",
    "postfix__instance_group",
    "postfix__tls_self_signed",
    "postfix__staging_dir",
)
# The instance layers, in merge order (later wins).
INSTANCE_LAYERS = (
    "postfix__instances",
    "postfix__dependent_instances",
    "postfix__group_instances",
    "postfix__host_instances",
)
INSTANCE_FIELDS = (
    "name",
    "state",
    "profile",
    "group",
    "myhostname",
    "inet_interfaces",
    "port",
    "mynetworks",
    "relay_next_hops",
    "tls_cert_file",
    "tls_key_file",
    "maincf",
    "mastercf",
)
# A profile: its layers, and whether its instances deliver through the relay transports.
PROFILE_FIELDS = ("maincf", "mastercf", "relay_transports")
COMPUTED = "computed (the role's parameters from the instance's keys)"

Layer = tuple[str, Any]  # (where the layer comes from, e.g. 'postfix__host_instances[1].maincf', list)


def _check_items(where: PostfixWhere, items: Any, name: str | None = None) -> None:
    """The `items` of a parameter: strings (added) or {name, state} mappings."""
    if not is_list(items):
        raise where.error(f"items must be a list, got {type_name(items)}")
    for pos, item in enumerate(items):
        value = item
        if isinstance(item, Mapping):
            unknown = sorted(str(key) for key in item if key not in ("name", "state"))
            if unknown:
                raise where.error(
                    f"items[{pos}]: unknown field(s) {', '.join(unknown)}; expected name, state"
                )
            if item.get("state", "present") not in STATES:
                raise where.error(f"items[{pos}]: state must be 'present' or 'absent', got {item['state']!r}")
            if item.get("name") is None:
                raise where.error(f"items[{pos}]: name is required")
            value = item["name"]
        check_list_item(where, f"items[{pos}]", value, name)


def _apply_items(value: Any, items: Sequence[Any]) -> list[Any]:
    """Add (at the end, once) or remove (state: absent) items of a list value."""
    if value is None or value in ("", []):
        result: list[Any] = []
    elif is_list(value):
        result = list(value)
    else:
        raise ValueError(
            f"items extend a list value, but the value so far is {value!r}; write that value as a list"
        )
    for item in items:
        state = item.get("state", "present") if isinstance(item, Mapping) else "present"
        value = item["name"] if isinstance(item, Mapping) else item
        text = main_value_text(value)
        if state == "absent":
            result = [old for old in result if main_value_text(old) != text]
        elif text not in (main_value_text(old) for old in result):
            result.append(value)
    return result


def _source_check_param(where: PostfixWhere, entry: Any, index: int) -> None:
    """Check one parameter entry as written in its layer (it may name only some fields)."""
    probe = {key: value for key, value in entry.items() if key != "items"}
    if entry.get("state", "present") == "absent":
        probe = {"name": entry.get("name"), "state": "absent", "value": ""}
    elif "value" not in probe:
        probe["value"] = ""  # the value may come from an earlier layer
    normalize_param(where, probe, index)
    if "items" in entry:
        _check_items(where.at(param_label(entry, index)), entry["items"], entry.get("name"))


def _source_check_service(where: PostfixWhere, entry: Any, index: int) -> None:
    """Check one service entry as written in its layer (it may name only some fields)."""
    if entry.get("state", "present") == "absent":
        normalize_services(where, [{"name": entry.get("name"), "type": entry.get("type"), "state": "absent"}])
        return
    probe = dict(entry)
    probe.setdefault("command", "smtpd")  # the command may come from an earlier layer
    if isinstance(probe.get("options"), Mapping):
        probe["options"] = {key: value for key, value in probe["options"].items() if value is not None}
    normalize_service(where, probe, index)


def _merge_sourced(
    instance: str, layers: list[Layer], check: Any, key: Any, merge: Any
) -> list[tuple[dict[str, Any], str]]:
    """Merge named layers by key; return (merged entry, where it was introduced) in first-seen order."""
    merged = merge_layers(
        layers, where_of=_where_of("postfix_instances", instance), key=key, merge=merge, check=check
    )
    return [(entry.fields, entry.source) for entry in merged if entry.state == "present"]


def _dependent_profiles(value: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """postfix__dependent_profiles: one mapping, or a list of mappings (one per exporting role)."""
    name = "postfix__dependent_profiles"
    where = PostfixWhere(f"postfix_instances: {name}")
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(name, value)]
    if not is_list(value):
        raise where.error(
            "must be a mapping (profile name -> {maincf, mastercf}) or a list of them (one per "
            f"exporting role), got {type_name(value)}"
        )
    result = []
    for pos, item in enumerate(value):
        if item is None:
            continue
        if not isinstance(item, Mapping):
            raise PostfixWhere(f"postfix_instances: {name}[{pos}]").error(
                f"must be a mapping (profile name -> {{maincf, mastercf}}), got {type_name(item)}"
            )
        result.append((f"{name}[{pos}]", item))
    return result


def _profile_layers(
    field: str,
    profile: str | None,
    profiles: list[tuple[str, Mapping[str, Any]]],
    dependent: list[tuple[str, Mapping[str, Any]]],
) -> list[Layer]:
    if profile is None:
        return []
    layers: list[Layer] = []
    for source, mapping in [*profiles[-1:], *dependent]:
        data = mapping.get(profile)
        if data is None:
            continue
        if not isinstance(data, Mapping):
            raise PostfixWhere(f"postfix_instances: {source}.{profile}").error(
                f"a profile must be a mapping with maincf and mastercf, got {type_name(data)}"
            )
        unknown = sorted(str(key) for key in data if key not in PROFILE_FIELDS)
        if unknown:
            raise PostfixWhere(f"postfix_instances: {source}.{profile}").error(
                f"unknown field(s) {', '.join(unknown)}; expected {', '.join(PROFILE_FIELDS)}"
            )
        layers.append((f"{source}.{profile}.{field}", data.get(field)))
    return layers


def _instance_key(here: PostfixWhere, entry: Mapping[str, Any]) -> str:
    return check_instance_name(here, entry.get("name"))


def _check_instance_entry(here: PostfixWhere, entry: Mapping[str, Any], index: int) -> None:
    there = PostfixWhere(here.filter_name, check_instance_name(here, entry.get("name")))
    unknown = sorted(str(key) for key in entry if key not in INSTANCE_FIELDS)
    if unknown:
        raise there.error(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(INSTANCE_FIELDS)}")
    for field in INSTANCE_LIST_FIELDS:
        if entry.get(field) is not None and not is_list(entry[field]):
            raise there.error(f"{field} must be a list, got {type_name(entry[field])}")


def _merge_instance_layers(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Merge the instance layers by name: keys last-wins (with their source); the maincf and
    mastercf of every layer's entry become layers of their own (merged later, in this order)."""
    merged = merge_layers(
        [(var, inputs.get(var)) for var in INSTANCE_LAYERS],
        where_of=_where_of("postfix_instances"),
        key=_instance_key,
        check=_check_instance_entry,
    )
    instances = []
    for entry in merged:
        known: dict[str, Any] = {"name": entry.key, "state": entry.state, "keys": {}, "sources": {}}
        known.update({"defined_in": [], **{field: [] for field in INSTANCE_LIST_FIELDS}})
        for source, written in entry.contributions:
            known["defined_in"].append(source)
            for field, value in written.items():
                if field in INSTANCE_LIST_FIELDS:
                    known[field].append((f"{source}.{field}", value))
                elif field not in ("name", "state"):
                    known["keys"][field] = value
                    known["sources"][field] = source
        instances.append(known)
    return instances


def _computed_params(
    inputs: Mapping[str, Any], instance: Mapping[str, Any], paths: Mapping[str, str], secondaries: list[str]
) -> list[Param]:
    """The parameters the role sets itself, from the instance's keys (they win over every layer)."""
    keys, name = instance["keys"], instance["name"]
    params: list[Param] = []
    if name == "-":
        params.append({"name": "multi_instance_wrapper", "value": "${command_directory}/postmulti -p --"})
        params.append({"name": "multi_instance_directories", "value": [f"/etc/{n}" for n in secondaries]})
    else:
        params.append({"name": "queue_directory", "value": paths["queue_directory"]})
        params.append({"name": "data_directory", "value": paths["data_directory"]})
        params.append({"name": "syslog_name", "value": name})
        params.append({"name": "multi_instance_name", "value": name})
        group = keys.get("group") or inputs.get("postfix__instance_group")
        params.append({"name": "multi_instance_group", "value": group})
    params.append({"name": "multi_instance_enable", "value": True})
    params.append({"name": "myhostname", "value": paths["myhostname"]})
    for key in ("inet_interfaces", "mynetworks"):
        if keys.get(key) is not None:
            params.append({"name": key, "value": keys[key]})
    if paths["tls_cert_file"]:
        params.append({"name": "smtpd_tls_cert_file", "value": paths["tls_cert_file"]})
        params.append({"name": "smtpd_tls_key_file", "value": paths["tls_key_file"]})
    hops = keys.get("relay_next_hops") or []
    if hops:
        params.append(
            {
                "name": "sender_dependent_default_transport_maps",
                "value": "randmap:{" + ", ".join(f"smtp:{hop}" for hop in hops) + "}",
                "comment": "Next hops: each message goes to a randomly chosen hop (load spreading); "
                "relayhost is never consulted.",
            }
        )
        params.append(
            {
                "name": "smtp_fallback_relay",
                "value": list(hops),
                "comment": "Failover: when the chosen hop does not take the message, the smtp client "
                "tries these in order.",
            }
        )
    return params


def _check_instance_keys(instance: Mapping[str, Any]) -> None:
    keys, sources, name = instance["keys"], instance["sources"], instance["name"]

    def fail(key: str, message: str) -> None:
        raise PostfixWhere(f"postfix_instances: {sources[key]}", name).error(f"{key} {message}")

    for key in ("profile", "group", "myhostname", "tls_cert_file", "tls_key_file"):
        if key in keys and keys[key] is not None and not isinstance(keys[key], str):
            fail(key, f"must be a string, got {type_name(keys[key])} {keys[key]!r}")
    for key in ("mynetworks", "relay_next_hops"):
        if keys.get(key) is not None and not is_list(keys[key]):
            fail(key, f"must be a list, got {type_name(keys[key])} {keys[key]!r}")
    port = keys.get("port")
    if port is not None and not (
        not isinstance(port, bool) and str(port).isascii() and str(port).isdigit() and 0 < int(port) < 65536
    ):
        fail("port", f"must be a port number (1-65535), got {port!r}")
    if port is None and keys.get("profile") == "loopback_unchecked" and instance.get("state") != "absent":
        fail(
            "profile",
            "is loopback_unchecked, which needs the instance's port (its smtp listener on loopback; "
            "mailstack's back-end gets it from mailman_core__smtp_port)",
        )
    if (keys.get("tls_cert_file") is None) != (keys.get("tls_key_file") is None):
        fail(
            "tls_cert_file" if "tls_cert_file" in keys else "tls_key_file",
            "needs its partner: give both tls_cert_file and tls_key_file, or neither",
        )


def _assemble(
    inputs: Mapping[str, Any],
    instance: dict[str, Any],
    profiles: list[tuple[str, Mapping[str, Any]]],
    dependent: list[tuple[str, Mapping[str, Any]]],
    secondaries: list[str],
    *,
    transports: tuple[list[dict[str, Any]], list[dict[str, Any]]],
) -> dict[str, Any]:
    name, keys = instance["name"], instance["keys"]
    primary = name == "-"
    config_directory = "/etc/postfix" if primary else f"/etc/{name}"
    self_signed = bool(inputs.get("postfix__tls_self_signed")) and keys.get("tls_cert_file") is None
    cert, key = keys.get("tls_cert_file") or "", keys.get("tls_key_file") or ""
    if self_signed:
        cert, key = f"{config_directory}/selfsigned-cert.pem", f"{config_directory}/selfsigned-key.pem"
    paths = {
        "queue_directory": "/var/spool/postfix" if primary else f"/var/spool/{name}",
        "data_directory": "/var/lib/postfix" if primary else f"/var/lib/{name}",
        "myhostname": keys.get("myhostname") or inputs.get("postfix__myhostname"),
        "tls_cert_file": cert,
        "tls_key_file": key,
    }
    out: dict[str, Any] = {
        "name": name,
        "state": instance["state"],
        "profile": keys.get("profile"),
        "config_directory": config_directory,
        **paths,
        "staging": f"{inputs.get('postfix__staging_dir')}/{config_directory.rsplit('/', 1)[-1]}",
        "unit": f"postfix@{name}",
        "self_signed": self_signed,
        "defined_in": instance["defined_in"],
    }
    if instance["state"] == "absent":
        # What the role destroys: configuration, queue, data and staging directories.
        removed = [config_directory, paths["queue_directory"], paths["data_directory"], out["staging"]]
        empty = {"inet_interfaces": "all", "maincf": [], "services": [], "main_cf": "", "master_cf": ""}
        return {**out, "paths": removed, **empty}
    # What the role creates: the staging directory; a secondary's own directories (the package
    # makes the primary's).
    out["directories"] = [{"path": out["staging"], "owner": "root", "mode": "0700"}]
    if not primary:
        out["directories"] += [
            {"path": config_directory, "owner": "root", "mode": "0755"},
            {"path": paths["queue_directory"], "owner": "root", "mode": "0755"},
            {"path": paths["data_directory"], "owner": "postfix", "mode": "0700"},
        ]
    profile = keys.get("profile")
    generated = transports if uses_relay_transports(profile, profiles) else ([], [])
    computed = _computed_params(inputs, instance, paths, secondaries)
    own_maincf = instance["maincf"]
    maincf_layers: list[Layer] = [
        ("postfix__maincf", inputs.get("postfix__maincf")),
        *_profile_layers("maincf", profile, profiles, dependent),
        (GENERATED, generated[0]),
        # The computed parameters are written after the profile's (their place in main.cf) and
        # merged again last: nothing in a layer overrides them (set the instance's keys instead).
        (COMPUTED, computed),
        *own_maincf,
        (COMPUTED, computed),
    ]
    mastercf_layers: list[Layer] = [
        ("__postfix_base_mastercf", inputs.get("__postfix_base_mastercf")),
        ("postfix__mastercf", inputs.get("postfix__mastercf")),
        *_profile_layers("mastercf", profile, profiles, dependent),
        (GENERATED, generated[1]),
        *instance["mastercf"],
    ]
    params = []
    for entry, source in _merge_sourced(name, maincf_layers, _source_check_param, _param_key, _merge_param):
        params.append(normalize_param(PostfixWhere(f"postfix_instances: {source}", name), entry, 0))
    services = []
    merged = _merge_sourced(name, mastercf_layers, _source_check_service, _service_key, _merge_service)
    for entry, source in merged:
        services.append(normalize_service(PostfixWhere(f"postfix_instances: {source}", name), entry, 0))
    port = keys.get("port")
    if port is not None:
        for service in services:
            if service["name"] == "smtp" and service["type"] == "inet":
                service["name"] = str(port)
    interfaces = next((p["value"] for p in params if p["name"] == "inet_interfaces"), "all")
    return {
        **out,
        "inet_interfaces": interfaces,
        "maincf": params,
        "services": services,
        "main_cf": postfix_main_cf(params, name),
        "master_cf": postfix_master_cf(services, name),
    }


def postfix_instances(inputs: Any) -> list[dict[str, Any]]:
    """Every instance of a host, ready to render, from the postfix role's variables.

    See postfix_instances.yml (ansible-doc -t filter postfix_instances) and docs/postfix-data-model.md.
    """
    where = PostfixWhere("postfix_instances")
    if not isinstance(inputs, Mapping):
        raise where.error(f"input must be a mapping of the postfix role's variables, got {type_name(inputs)}")
    unknown = sorted(str(key) for key in inputs if key not in ASSEMBLY_INPUTS)
    if unknown:
        raise where.error(f"unknown input(s) {', '.join(unknown)}; expected {', '.join(ASSEMBLY_INPUTS)}")
    profiles: list[tuple[str, Mapping[str, Any]]] = []
    for var in ("postfix__profiles", "postfix__custom_profiles"):
        value = inputs.get(var) or {}
        if not isinstance(value, Mapping):
            raise PostfixWhere(f"postfix_instances: {var}").error(
                f"must be a mapping (profile name -> {{maincf, mastercf}}), got {type_name(value)}"
            )
        profiles.append((var, value))
    known_profiles = {**profiles[0][1], **profiles[1][1]}
    # Which variable defines each profile (postfix__custom_profiles replaces a role profile whole).
    by_profile = {p: [profiles[1] if p in profiles[1][1] else profiles[0]] for p in known_profiles}
    dependent = _dependent_profiles(inputs.get("postfix__dependent_profiles"))
    merged = _merge_instance_layers(inputs)
    present = [i for i in merged if i["state"] == "present"]
    for instance in present:
        _check_instance_keys(instance)
        profile = instance["keys"].get("profile")
        if profile is not None and profile not in known_profiles:
            raise PostfixWhere(
                f"postfix_instances: {instance['sources']['profile']}", instance["name"]
            ).error(
                f"profile {profile!r} is not defined; known profiles (postfix__profiles, "
                f"postfix__custom_profiles): {', '.join(sorted(known_profiles))}"
            )
    if not any(i["name"] == "-" for i in present):
        raise where.error(
            f"the primary instance '-' must be present in {', '.join(INSTANCE_LAYERS)} (it runs the others); "
            "remove secondary instances with state: absent, never the primary"
        )
    secondaries = [i["name"] for i in present if i["name"] != "-"]
    stock = {s.get("name") for s in inputs.get("__postfix_base_mastercf") or [] if isinstance(s, Mapping)}
    transports = relay_transport_layers(merge_relay_transports(inputs, stock))
    result = []
    for i in merged:
        profiles_of_i = by_profile.get(i["keys"].get("profile"), [])
        result.append(_assemble(inputs, i, profiles_of_i, dependent, secondaries, transports=transports))
    try:
        postfix_check_instances(result)
    except FilterError as exc:
        defined = "; ".join(f"{i['name']!r}: {', '.join(i['defined_in'])}" for i in result)
        raise FilterError(f"postfix_instances: {exc} (instances defined in {defined})") from None
    return result
