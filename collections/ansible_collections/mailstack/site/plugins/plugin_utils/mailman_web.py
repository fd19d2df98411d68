# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Django settings from data, for the mailman_web role (filter mailman_web_settings, plugins/filter/)."""

from __future__ import annotations

import keyword
import math
import re
from collections.abc import Mapping
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where

_SETTING = re.compile(r"[A-Z][A-Z0-9_]*", re.ASCII)


def _literal(path: str, value: Any) -> str:
    """The Python literal of a YAML value (str, int, float, bool, None, list, tuple, mapping)."""
    if value is None or isinstance(value, bool | int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Where("mailman_web_settings").error(f"setting {path}: {value!r} is not a finite number")
        return repr(value)
    if isinstance(value, str):
        # str() drops Ansible's string subclasses (templated and unsafe text); repr() quotes and escapes.
        return repr(str(value))
    if isinstance(value, Mapping):
        items = []
        for key, item in value.items():
            if not isinstance(key, str):
                raise Where("mailman_web_settings").error(
                    f"setting {path}: keys must be strings, got {key!r}"
                )
            items.append(f"{str(key)!r}: {_literal(f'{path}[{str(key)!r}]', item)}")
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        elements = [_literal(f"{path}[{index}]", item) for index, item in enumerate(value)]
        if isinstance(value, tuple):
            return "(" + "".join(f"{e}, " for e in elements).rstrip(" ") + ")"
        return "[" + ", ".join(elements) + "]"
    raise Where("mailman_web_settings").error(
        f"setting {path}: {type(value).__name__} has no Python literal "
        "(use strings, numbers, booleans, null, lists and mappings)"
    )


def mailman_web_settings(settings: Any) -> str:
    """Return Django settings, one `NAME = literal` line per entry, in the mapping's order."""
    if not isinstance(settings, Mapping):
        raise Where("mailman_web_settings").error(
            f"input must be a mapping of setting name to value, got {type(settings).__name__}"
        )
    lines = []
    for name, value in settings.items():
        if not isinstance(name, str) or not _SETTING.fullmatch(name) or keyword.iskeyword(name):
            raise Where("mailman_web_settings").error(
                f"setting name {name!r} is not a Django setting "
                "(upper case letters, digits and underscores, starting with a letter)"
            )
        lines.append(f"{name} = {_literal(name, value)}")
    return "\n".join(lines) + "\n"
