"""Filter of the mailman_web role: Django settings from data.

Documented beside this file (mailman_web_settings.yml), so `ansible-doc -t filter NAME` shows it.
"""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping
from typing import Any

from ansible.errors import AnsibleFilterError

_SETTING = re.compile(r"[A-Z][A-Z0-9_]*", re.ASCII)


def _literal(path: str, value: Any) -> str:
    """The Python literal of a YAML value (str, int, float, bool, None, list, tuple, mapping)."""
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise AnsibleFilterError(
                f"mailman_web_settings: setting {path}: {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        # str() drops Ansible's string subclasses (templated and unsafe text); repr() quotes and escapes.
        return repr(str(value))
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise AnsibleFilterError(
                    f"mailman_web_settings: setting {path}: keys must be strings, got {key!r}")
            items.append(f"{str(key)!r}: {_literal(f'{path}[{str(key)!r}]', item)}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        elements = [_literal(f"{path}[{index}]", item) for index, item in enumerate(value)]
        if isinstance(value, tuple):
            return "(" + "".join(f"{e}, " for e in elements).rstrip(" ") + ")"
        return "[" + ", ".join(elements) + "]"
    raise AnsibleFilterError(
        f"mailman_web_settings: setting {path}: {type(value).__name__} has no Python literal "
        "(use strings, numbers, booleans, null, lists and mappings)")


def mailman_web_settings(settings: Any) -> str:
    """Return Django settings, one `NAME = literal` line per entry, in the mapping's order."""
    if not isinstance(settings, Mapping):
        raise AnsibleFilterError(
            "mailman_web_settings: input must be a mapping of setting name to value, "
            f"got {type(settings).__name__}")
    lines = []
    for name, value in settings.items():
        if not isinstance(name, str) or not _SETTING.fullmatch(name) or keyword.iskeyword(name):
            raise AnsibleFilterError(
                f"mailman_web_settings: setting name {name!r} is not a Django setting "
                "(upper case letters, digits and underscores, starting with a letter)")
        lines.append(f"{name} = {_literal(name, value)}")
    return "\n".join(lines) + "\n"


class FilterModule:
    """Filters of the mailman_web role."""

    def filters(self) -> dict[str, Any]:
        return {"mailman_web_settings": mailman_web_settings}
