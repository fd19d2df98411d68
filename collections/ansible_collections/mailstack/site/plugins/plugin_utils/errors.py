# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one error helper of mailstack's filters: every message says where the bad input is.

A message is ``<filter>: <context>: ... : <what is wrong>``, the context naming the variable,
host, instance, entry and field at fault (``postfix_instances: postfix__host_instances[2]:
instance 'postfix-out': port must be ...``), so an operator finds the line to fix without reading
code. Filters raise ``Where(...).error(message)``; nothing else builds messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only without ansible-core installed

    class AnsibleFilterError(Exception):  # type: ignore[no-redef]
        """Stand-in so the module imports without Ansible."""


FilterError = AnsibleFilterError


class Where:
    """Where an error happened: the filter, then the parts of the context, outermost first.

    ``Where('firewall_merge_rules', 'firewall__host_rules', "rule 'smtp'")`` formats as
    ``firewall_merge_rules: firewall__host_rules: rule 'smtp': <message>``. Parts that are None are
    left out, so callers can pass an optional context as it is.
    """

    __slots__ = ("filter_name", "parts")

    def __init__(self, filter_name: str, *parts: str | None) -> None:
        self.filter_name = filter_name
        self.parts = tuple(part for part in parts if part is not None)

    def at(self, *parts: str | None) -> Where:
        """The same filter with more context after this one's."""
        return Where(self.filter_name, *self.parts, *parts)

    def error(self, message: str) -> AnsibleFilterError:
        return AnsibleFilterError(": ".join([self.filter_name, *self.parts, message]))

    def __str__(self) -> str:
        return ": ".join([self.filter_name, *self.parts])


def type_name(value: Any) -> str:
    """The builtin type name of a value (Ansible 2.19 passes tagged subclasses of str, dict, list)."""
    return next(t.__name__ for t in type(value).__mro__ if t.__module__ == "builtins")


def is_list(value: Any) -> bool:
    """A YAML list: a sequence that is not a string, bytes or a mapping."""
    return isinstance(value, Sequence) and not isinstance(value, str | bytes | Mapping)
