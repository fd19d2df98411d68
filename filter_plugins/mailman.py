"""Filters of the mailman_core role: runner counts and layered list/domain data.

Each filter is documented beside this file (mailman_runners.yml, mailman_started_runners.yml,
mailman_merge_by_name.yml), so `ansible-doc -t filter NAME` shows it.
"""

from __future__ import annotations

from typing import Any

from ansible.errors import AnsibleFilterError

RUNNERS = ("archive", "bad", "bounces", "command", "digest", "in", "lmtp", "nntp", "out",
           "pipeline", "rest", "retry", "shunt", "task", "virgin")
# The runners Mailman's schema does not start (start: no): their queues are for an admin to read.
NOT_STARTED = ("bad", "shunt")


def _power_of_two(name: str, value: Any) -> int:
    not_integer = AnsibleFilterError(
        f"mailman_runners: runner '{name}': instances must be an integer, got {value!r}")
    if isinstance(value, bool):
        raise not_integer
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise not_integer from None
    if str(count) != str(value).strip():
        raise not_integer
    if count < 1 or count & (count - 1):
        raise AnsibleFilterError(
            f"mailman_runners: runner '{name}': instances must be a power of two (1, 2, 4, 8, ...), "
            f"got {count}")
    return count


def mailman_runners(out_runners: Any, extra: dict[str, Any] | None = None) -> dict[str, int]:
    """Return {runner: instances}, `out` first, every count checked to be a power of two."""
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise AnsibleFilterError(
            f"mailman_runners: runner instances must be a dict, got {type(extra).__name__}")
    result = {"out": _power_of_two("out", out_runners)}
    for name, value in extra.items():
        if name not in RUNNERS:
            raise AnsibleFilterError(
                f"mailman_runners: unknown runner '{name}' (known: {', '.join(RUNNERS)})")
        if name == "out":
            raise AnsibleFilterError("mailman_runners: set the out runners with mailman_core__out_runners")
        result[name] = _power_of_two(name, value)
    return result


def mailman_started_runners(runners: Any) -> dict[str, int]:
    """Every runner Mailman's master starts, with its instances: {runner: count}, sorted by name.

    Takes mailman_runners' result (the counts the role sets); every other runner Mailman starts has
    one instance. What the role's runner check (mailman-runner-check) expects the master to run.
    """
    if not isinstance(runners, dict):
        raise AnsibleFilterError(
            f"mailman_started_runners: expects mailman_runners' mapping, got {type(runners).__name__}")
    unknown = sorted(set(runners) - set(RUNNERS))
    if unknown:
        raise AnsibleFilterError(f"mailman_started_runners: unknown runner '{unknown[0]}'")
    return {name: int(runners.get(name, 1)) for name in RUNNERS if name not in NOT_STARTED}


def mailman_merge_by_name(layers: list[Any], what: str = "items") -> list[dict[str, Any]]:
    """Merge layers of {name, ...} dicts by name (keys of later entries win); order of first appearance."""
    if not isinstance(layers, list):
        raise AnsibleFilterError(f"mailman_merge_by_name: {what}: layers must be a list of lists")
    merged: dict[str, dict[str, Any]] = {}
    for index, layer in enumerate(layers):
        if layer is None:
            continue
        if not isinstance(layer, list):
            raise AnsibleFilterError(
                f"mailman_merge_by_name: {what}: layer {index} must be a list, got {type(layer).__name__}")
        for item in layer:
            if not isinstance(item, dict) or not item.get("name"):
                raise AnsibleFilterError(
                    f"mailman_merge_by_name: {what}: layer {index}: every entry needs a name, got {item!r}")
            name = str(item["name"]).lower()
            if what == "lists" and name.count("@") != 1:
                raise AnsibleFilterError(
                    f"mailman_merge_by_name: lists: '{item['name']}' must be list@domain")
            merged[name] = {**merged.get(name, {}), **item, "name": name}
    return list(merged.values())


class FilterModule:
    def filters(self) -> dict[str, Any]:
        return {
            "mailman_runners": mailman_runners,
            "mailman_started_runners": mailman_started_runners,
            "mailman_merge_by_name": mailman_merge_by_name,
        }
