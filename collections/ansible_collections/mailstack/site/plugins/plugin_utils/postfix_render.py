# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Render main.cf and master.cf from canonical (checked) parameters and services."""

from __future__ import annotations

from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_model import (
    PostfixWhere,
    Service,
    check_instance_name,
    main_value_text,
    normalize_params,
    normalize_services,
    option_text,
)
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_syntax import ISSPACE, SPACE, brace

# Column where each master.cf field starts (the layout of Debian's file and of `postconf -M`).
MASTER_COLUMNS = (0, 11, 17, 25, 33, 41, 49, 57)
MASTER_HEADER = (
    "# service type  private unpriv  chroot  wakeup  maxproc command + args\n"
    "#               (yes)   (yes)   (no)    (never) (100)\n"
    "\n"
)
MAIN_LIST_WIDTH = 80  # a list longer than this is rendered one item per continuation line
MAIN_INDENT = "    "
MASTER_INDENT = "  "


def _comment_lines(comment: str) -> list[str]:
    return [f"# {line}".rstrip(ISSPACE) if line.strip(ISSPACE) else "#" for line in comment.split("\n")]


def _master_line(service: Service) -> str:
    fields = [
        service["name"],
        service["type"],
        service["private"],
        service["unpriv"],
        service["chroot"],
        str(service["wakeup"]),
        str(service["maxproc"]),
        service["command"],
    ]
    line = ""
    for column, field in zip(MASTER_COLUMNS, fields, strict=True):
        if line:
            line += " " * max(1, column - len(line))
        line += field
    return line


def _render_master(services: list[Service]) -> str:
    out = [MASTER_HEADER]
    for service in services:
        lines = []
        if service["comment"]:
            lines.extend(_comment_lines(service["comment"]))
        lines.append(_master_line(service))
        for key, value in service["options"].items():
            text = option_text(value)
            if any(char in SPACE for char in text) or text.startswith("{"):
                lines.append(f"{MASTER_INDENT}-o {{ {key} = {text} }}")
            else:
                lines.append(f"{MASTER_INDENT}-o {key}={text}")
        if service["args"]:
            lines.append(MASTER_INDENT + " ".join(brace(arg) for arg in service["args"]))
        out.append("\n".join(lines) + "\n")
    return "".join(out)


def postfix_master_cf(services: Any, instance: str = "-") -> str:
    """Render master.cf (body, without the ansible_managed header) from a list of services."""
    where = PostfixWhere("postfix_master_cf", instance)
    check_instance_name(where, instance)
    return _render_master(normalize_services(where, services))


def postfix_main_cf(params: Any, instance: str = "-") -> str:
    """Render main.cf (body, without the ansible_managed header) from a list of parameters."""
    where = PostfixWhere("postfix_main_cf", instance)
    check_instance_name(where, instance)
    out: list[str] = []
    for param in normalize_params(where, params):
        lines = []
        if param["comment"]:
            if out:
                lines.append("")
            lines.extend(_comment_lines(param["comment"]))
        value = param["value"]
        single = f"{param['name']} = {main_value_text(value)}".rstrip(" ")
        items = [main_value_text(item) for item in value] if isinstance(value, list) else []
        # One item per continuation line, unless an item starts with '#' (that line would be a comment).
        if len(items) > 1 and len(single) > MAIN_LIST_WIDTH and not any(i.startswith("#") for i in items):
            lines.append(f"{param['name']} =")
            lines.extend(f"{MAIN_INDENT}{item}," for item in items[:-1])
            lines.append(f"{MAIN_INDENT}{items[-1]}")
        else:
            lines.append(single)
        out.append("\n".join(lines) + "\n")
    return "".join(out)
