# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Mailman's runners and periodic jobs for the mailman_core role (filters mailman_runners,
mailman_started_runners, mailman_periodic_jobs)."""

from __future__ import annotations

import re
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where, is_list, type_name

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


_JOB_NAME = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_JOB_KEYS = ("name", "command", "on_calendar", "state")


def mailman_periodic_jobs(jobs: Any, variable: str = "mailman_core__periodic_jobs") -> list[dict[str, str]]:
    """Mailman's periodic jobs, checked: [{name, command, on_calendar, state}], in the given order.

    Each entry names the `mailman` subcommand it runs and when (systemd's OnCalendar syntax, checked
    on the host by systemd-analyze); `state: absent` removes the job, which then needs only its name.
    Names are unique, lower-case letters, digits and dashes (they name units: mailman3-NAME.timer).
    """
    where = Where("mailman_periodic_jobs", variable)
    if not is_list(jobs):
        raise where.error(f"must be a list of jobs, got {type_name(jobs)}")
    result: list[dict[str, str]] = []
    seen: set[str] = set()
    for index, job in enumerate(jobs):
        at = where.at(f"[{index}]")
        if not isinstance(job, dict):
            raise at.error(f"a job is a mapping (name, command, on_calendar, state), got {type_name(job)}")
        unknown = sorted(set(job) - set(_JOB_KEYS))
        if unknown:
            raise at.error(f"unknown key '{unknown[0]}' (known: {', '.join(_JOB_KEYS)})")
        name = job.get("name")
        if not isinstance(name, str) or not _JOB_NAME.match(name):
            raise at.error(f"name must be lower-case letters, digits and dashes, got {name!r}")
        at = where.at(f"job '{name}'")
        if name in seen:
            raise at.error("named twice")
        seen.add(name)
        state = job.get("state", "present")
        if state not in ("present", "absent"):
            raise at.error(f"state must be present or absent, got {state!r}")
        entry = {"name": name, "state": state, "command": "", "on_calendar": ""}
        if state == "present":
            for key in ("command", "on_calendar"):
                value = job.get(key)
                if not isinstance(value, str) or not value.strip() or "\n" in value or "%" in value:
                    raise at.error(f"{key} must be a one-line string without '%', got {value!r}")
                entry[key] = " ".join(value.split())
            if entry["command"].split()[0] == "mailman":
                raise at.error("command is the mailman subcommand alone, e.g. 'digests --periodic'")
        result.append(entry)
    return result
