# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one layered-merge engine of mailstack: every layered variable of every role goes through it.

A role's data comes in *layers*: the role's defaults, what other roles export (``*__dependent_*``),
the inventory's group and host layers (``*__group_*``, ``*__host_*``), in that order. Each layer is
a list of entries (mappings) or null, named by the variable it comes from, so that every error
points at the line to fix (``postfix__host_instances[2]``). The rules, the same for every caller:

- **Key.** Each entry is keyed by the caller's key function: by default its ``name`` (a
  non-empty string), case-folded where the caller says names are case-insensitive (mail domains,
  list addresses). An entry without a valid key is an error naming ``layer[index]``.
- **Order.** Entries come out in the order of their first appearance in any layer.
- **Fields.** A later entry changes only the fields it names; the caller may give per-field rules
  (Postfix's ``options`` merge option by option, a parameter's ``items`` add to its list value).
- **state.** ``present`` (the default) or ``absent``. ``absent`` forgets everything earlier layers
  said about the key: the result keeps the entry as the absent entry wrote it, marked absent (a
  module can then remove the thing; renderers drop it, see ``present()``), and a later present
  entry starts afresh from its own fields.
- **Duplicates.** A key appears at most once per layer; twice is an error naming both positions
  (merge the two entries, or move one to a later layer).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import (
    FilterError,
    Where,
    is_list,
    type_name,
)

STATES = ("present", "absent")

Layer = tuple[str, Any]  # (the variable the layer comes from, its list or None)

# Names of the optional formats a caller may require (``name_format``).
_DOMAIN = re.compile(r"([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}", re.ASCII)
_LOCAL_PART = re.compile(r"[a-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}", re.ASCII)


class WhereLike(Protocol):
    def error(self, message: str) -> FilterError: ...


@dataclass
class Merged:
    """One merged entry: its key, its state, its merged fields (without ``state``), and the layer
    entries that made it (``source`` the first of them, ``contributions`` all, as (source, entry))."""

    key: Hashable
    state: str
    fields: dict[str, Any]
    source: str
    contributions: list[tuple[str, Mapping[str, Any]]] = field(default_factory=list)


KeyFn = Callable[[Any, Mapping[str, Any]], Hashable]
MergeFn = Callable[[dict[str, Any], Mapping[str, Any], Any], dict[str, Any]]
CheckFn = Callable[[Any, Mapping[str, Any], int], None]
WhereFn = Callable[[str, "int | None"], Any]


def by_name(casefold: bool = False, name_format: str | None = None, field: str = "name") -> KeyFn:
    """The default key: the entry's ``name`` (or another field), a non-empty string (case-folded when
    asked), in the given format (``domain``: a mail domain; ``address``: local@domain) when one is given."""
    if name_format not in (None, "domain", "address"):
        raise ValueError(f"name_format must be None, 'domain' or 'address', got {name_format!r}")

    def key(here: Any, entry: Mapping[str, Any]) -> Hashable:
        name = entry.get(field)
        if not isinstance(name, str) or not name:
            raise here.error(f"every entry needs a {field} (a non-empty string), got {entry!r}")
        folded = name.lower() if casefold else name
        if name_format == "domain" and not _DOMAIN.fullmatch(name.lower()):
            raise here.error(f"name must be a domain name, got {name!r}")
        if name_format == "address":
            local, at, domain = name.lower().rpartition("@")
            if not at or not _LOCAL_PART.fullmatch(local) or not _DOMAIN.fullmatch(domain):
                raise here.error(f"name must be an address local@domain, got {name!r}")
        return folded

    return key


def replace_fields(current: dict[str, Any], entry: Mapping[str, Any], here: Any) -> dict[str, Any]:
    """The default field rule: each field the entry names replaces the earlier value."""
    return {**current, **entry}


def merge_layers(
    layers: Iterable[Layer],
    *,
    where: Where | None = None,
    where_of: WhereFn | None = None,
    key: KeyFn | None = None,
    merge: MergeFn = replace_fields,
    check: CheckFn | None = None,
) -> list[Merged]:
    """Merge named layers by key (the module docstring has the rules); return every key's entry.

    ``where_of(label, index)`` gives the error context of one entry (``index`` None: the layer
    itself); by default ``where.at('label[index]')``. ``check(here, entry, index)`` checks an entry
    as written, before it is merged; ``merge(current, entry, here)`` combines fields.
    """
    if where_of is None:
        base = where or Where("merge_layers")

        def where_of(label: str, index: int | None) -> Any:
            return base.at(label if index is None else f"{label}[{index}]")

    key = key or by_name()
    merged: dict[Hashable, Merged] = {}
    for label, layer in layers:
        if layer is None:
            continue
        if not is_list(layer):
            raise where_of(label, None).error(f"must be a list, got {type_name(layer)}")
        seen: dict[Hashable, int] = {}
        for index, entry in enumerate(layer):
            here = where_of(label, index)
            if not isinstance(entry, Mapping):
                raise here.error(f"an entry must be a mapping, got {entry!r}")
            state = entry.get("state", "present")
            if state not in STATES:
                raise here.error(f"state must be 'present' or 'absent', got {state!r}")
            if check is not None:
                check(here, entry, index)
            name = key(here, entry)
            if name in seen:
                raise here.error(
                    f"names the same entry as {label}[{seen[name]}]: one entry per name in a layer "
                    "(merge the two, or move one to a later layer)"
                )
            seen[name] = index
            source = f"{label}[{index}]"
            own = {f: v for f, v in entry.items() if f != "state"}
            current = merged.get(name)
            if state == "absent":
                merged[name] = Merged(name, "absent", own, source, [(source, entry)])
            elif current is None or current.state == "absent":
                merged[name] = Merged(name, "present", merge({}, own, here), source, [(source, entry)])
            else:
                current.fields = merge(current.fields, own, here)
                current.contributions.append((source, entry))
    return list(merged.values())


def present(merged: Iterable[Merged]) -> list[dict[str, Any]]:
    """The fields of the present entries, in order (what a renderer writes)."""
    return [entry.fields for entry in merged if entry.state == "present"]


def layer_names(where: Where, layers: Any, names: Any) -> list[Layer]:
    """Pair a list of layers with the variable names they come from (for the Ansible filters)."""
    if not is_list(layers):
        raise where.error(f"input must be a list of layers (lists or null), got {type_name(layers)}")
    if names is None:
        names = [f"layer {pos}" for pos in range(len(layers))]
    if not is_list(names) or not all(isinstance(n, str) for n in names):
        raise where.error(f"names must be a list of variable names, got {names!r}")
    if len(names) != len(layers):
        raise where.error(f"give one variable name per layer ({len(layers)}), got {len(names)}: {names!r}")
    return list(zip(names, layers, strict=True))


def merged_entries(merged: Sequence[Merged], name_field: str = "name") -> list[dict[str, Any]]:
    """Every entry with its canonical key as ``name`` and its ``state``: what a module acts on."""
    return [{**entry.fields, name_field: entry.key, "state": entry.state} for entry in merged]


def merge_named_layers(
    layers: Any, names: Any = None, casefold: bool = False, name_format: str | None = None, key: str = "name"
) -> list[dict[str, Any]]:
    """The merge_layers filter: layers of {name, ...} entries merged by name (the module's rules).

    Returns every entry with its ``name`` (case-folded when ``casefold``; or the field ``key``
    names) and its ``state``: the present ones with their merged fields, the absent ones as the
    absent entry wrote them.
    """
    where = Where("merge_layers")
    if name_format not in (None, "domain", "address"):
        raise where.error(f"name_format must be null, 'domain' or 'address', got {name_format!r}")
    if not isinstance(key, str) or not key:
        raise where.error(f"key must be the name of the field entries are keyed by, got {key!r}")
    merged = merge_layers(
        layer_names(where, layers, names), where=where, key=by_name(bool(casefold), name_format, key)
    )
    return merged_entries(merged, key)
