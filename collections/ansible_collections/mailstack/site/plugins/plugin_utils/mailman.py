# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mailman's runners for the mailman_core role (filters mailman_runners, mailman_started_runners)."""

from __future__ import annotations

from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where

RUNNERS = (
    "archive",
    "bad",
    "bounces",
    "command",
    "digest",
    "in",
    "lmtp",
    "nntp",
    "out",
    "pipeline",
    "rest",
    "retry",
    "shunt",
    "task",
    "virgin",
)
# The runners Mailman's schema does not start (start: no): their queues are for an admin to read.
NOT_STARTED = ("bad", "shunt")


def _power_of_two(name: str, value: Any) -> int:
    not_integer = Where("mailman_runners").error(
        f"runner '{name}': instances must be an integer, got {value!r}"
    )
    if isinstance(value, bool):
        raise not_integer
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise not_integer from None
    if str(count) != str(value).strip():
        raise not_integer
    if count < 1 or count & (count - 1):
        raise Where("mailman_runners").error(
            f"runner '{name}': instances must be a power of two (1, 2, 4, 8, ...), got {count}"
        )
    return count


def mailman_runners(out_runners: Any, extra: dict[str, Any] | None = None) -> dict[str, int]:
    """Return {runner: instances}, `out` first, every count checked to be a power of two."""
    if extra is None:
        extra = {}
    if not isinstance(extra, dict):
        raise Where("mailman_runners").error(f"runner instances must be a dict, got {type(extra).__name__}")
    result = {"out": _power_of_two("out", out_runners)}
    for name, value in extra.items():
        if name not in RUNNERS:
            raise Where("mailman_runners").error(f"unknown runner '{name}' (known: {', '.join(RUNNERS)})")
        if name == "out":
            raise Where("mailman_runners").error("set the out runners with mailman_core__out_runners")
        result[name] = _power_of_two(name, value)
    return result


def mailman_started_runners(runners: Any) -> dict[str, int]:
    """Every runner Mailman's master starts, with its instances: {runner: count}, sorted by name.

    Takes mailman_runners' result (the counts the role sets); every other runner Mailman starts has
    one instance. What the role's runner check (mailman-runner-check) expects the master to run.
    """
    if not isinstance(runners, dict):
        raise Where("mailman_started_runners").error(
            f"expects mailman_runners' mapping, got {type(runners).__name__}"
        )
    unknown = sorted(set(runners) - set(RUNNERS))
    if unknown:
        raise Where("mailman_started_runners").error(f"unknown runner '{unknown[0]}'")
    return {name: int(runners.get(name, 1)) for name in RUNNERS if name not in NOT_STARTED}
