# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Relay delivery policy as one structure: named transports with their domains and limits.

The layers ``postfix__relay_transports`` (the role's), ``postfix__group_relay_transports`` and
``postfix__host_relay_transports`` hold entries ``{name, domains, concurrency, rate_delay,
recipient_limit, comment, state}``, merged by name by the one engine (plugin_utils/layers.py), so
``postfix__group_relay_transports: [{name: provider_google, concurrency: 20}]`` changes one field
of one transport. An instance whose profile sets ``relay_transports: true`` (the ``relay``
profile) gets, right after the profile's own layers:

- main.cf: ``transport_maps = inline:{ {domain = transport:}, ... }`` (no parameter when no
  transport carries a domain), and per transport ``<name>_destination_concurrency_limit``,
  ``<name>_destination_rate_delay``, ``<name>_destination_recipient_limit`` for the limits it sets;
- master.cf: one clone of ``smtp`` per transport (``<name> unix - - y - - smtp``).

An instance layer can still override any of these parameters or services by name.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import is_list, type_name
from ansible_collections.mailstack.site.plugins.plugin_utils.layers import Merged, by_name, merge_layers
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_model import PostfixWhere

# The layers, in merge order (later wins).
TRANSPORT_LAYERS = (
    "postfix__relay_transports",
    "postfix__group_relay_transports",
    "postfix__host_relay_transports",
)
FIELDS = ("name", "state", "domains", "concurrency", "rate_delay", "recipient_limit", "comment")
# The limits and the main.cf parameter each one sets: <transport>_<suffix>.
LIMITS = (
    ("concurrency", "destination_concurrency_limit"),
    ("rate_delay", "destination_rate_delay"),
    ("recipient_limit", "destination_recipient_limit"),
)
GENERATED = "postfix__relay_transports (generated)"

# A transport name is a master.cf service name and the prefix of its main.cf parameters.
_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}", re.ASCII)
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.ASCII)
# A Postfix time value: a number with an optional unit (s, m, h, d, w).
_TIME = re.compile(r"[0-9]+[smhdw]?", re.ASCII)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _check_entry(here: PostfixWhere, entry: Mapping[str, Any], index: int) -> None:
    """One entry as written: known fields, each of the right shape."""
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise here.error(
            f"name must be a transport name (lower-case letters, digits and _, starting with a "
            f"letter; it prefixes the transport's main.cf parameters), got {name!r}"
        )
    there = here.at(f"transport {name!r}")
    unknown = sorted(str(key) for key in entry if key not in FIELDS)
    if unknown:
        raise there.error(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(FIELDS)}")
    if entry.get("state", "present") == "absent":
        return
    domains = entry.get("domains")
    if domains is not None:
        if not is_list(domains):
            raise there.error(f"domains must be a list of domain names, got {type_name(domains)}")
        for domain in domains:
            if not isinstance(domain, str) or not _DOMAIN.fullmatch(domain.lower()):
                raise there.error(f"domains: {domain!r} is not a domain name")
    for field in ("concurrency", "recipient_limit"):
        if entry.get(field) is not None and not _positive_int(entry[field]):
            raise there.error(f"{field} must be a positive integer, got {entry[field]!r}")
    delay = entry.get("rate_delay")
    if delay is not None and not (
        isinstance(delay, str | int) and not isinstance(delay, bool) and _TIME.fullmatch(str(delay))
    ):
        raise there.error(f"rate_delay must be a Postfix time (e.g. 2s, 1m, 0s), got {delay!r}")
    comment = entry.get("comment")
    if comment is not None and not isinstance(comment, str):
        raise there.error(f"comment must be a string, got {type_name(comment)}")


def merge_relay_transports(inputs: Mapping[str, Any], reserved: set[str]) -> list[Merged]:
    """The transports of the three layers merged by name; reserved are the names of stock services."""

    def where_of(label: str, index: int | None) -> PostfixWhere:
        return PostfixWhere(f"postfix_instances: {label}" + ("" if index is None else f"[{index}]"))

    merged = merge_layers(
        [(var, inputs.get(var)) for var in TRANSPORT_LAYERS],
        where_of=where_of,
        key=by_name(),
        check=_check_entry,
    )
    owner: dict[str, tuple[str, str]] = {}
    for entry in merged:
        if entry.state != "present":
            continue
        # Name the layer entry that set the domains (or the transport's first one).
        source = next(
            (src for src, written in reversed(entry.contributions) if "domains" in written), entry.source
        )
        here = PostfixWhere(f"postfix_instances: {source}").at(f"transport {entry.key!r}")
        if entry.key in reserved:
            raise here.error(
                "is the name of a stock master.cf service; name the transport after its destinations "
                "(e.g. provider_example)"
            )
        for domain in entry.fields.get("domains") or []:
            folded = domain.lower()
            if folded in owner and owner[folded][0] != entry.key:
                other, where = owner[folded]
                raise here.error(
                    f"domain {domain!r} is already carried by transport {other!r} ({where}); "
                    "a domain takes one transport"
                )
            owner[folded] = (str(entry.key), source)
    return merged


def relay_transport_layers(merged: list[Merged]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The main.cf parameters and master.cf services the transports generate (as layer entries)."""
    transports = [entry for entry in merged if entry.state == "present"]
    pairs = [
        (domain.lower(), entry.key) for entry in transports for domain in entry.fields.get("domains") or []
    ]
    maincf: list[dict[str, Any]] = []
    if pairs:
        maincf.append(
            {
                "name": "transport_maps",
                "value": "inline:{ " + ", ".join(f"{{ {d} = {t}: }}" for d, t in pairs) + " }",
                "comment": "The destinations with their own limits (postfix__relay_transports).",
            }
        )
    mastercf: list[dict[str, Any]] = []
    for entry in transports:
        comment = entry.fields.get("comment")
        for field, suffix in LIMITS:
            value = entry.fields.get(field)
            if value is None:
                continue
            param: dict[str, Any] = {"name": f"{entry.key}_{suffix}", "value": value}
            if comment:
                param["comment"] = comment
                comment = None
            maincf.append(param)
        mastercf.append({"name": entry.key, "type": "unix", "chroot": "y", "command": "smtp"})
    return maincf, mastercf


def uses_relay_transports(profile: str | None, profiles: list[tuple[str, Mapping[str, Any]]]) -> bool:
    """Whether an instance of this profile delivers through the transports (its ``relay_transports``)."""
    data = profiles[-1][1].get(profile) if profile is not None and profiles else None
    flag = data.get("relay_transports", False) if isinstance(data, Mapping) else False
    if not isinstance(flag, bool):
        raise PostfixWhere(f"postfix_instances: {profiles[-1][0]}.{profile}").error(
            f"relay_transports must be true or false, got {flag!r}"
        )
    return flag
