# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Postfix data model: what a parameter and a service are, every field checked.

Canonical service (what normalize_service returns)::

    {name, type, private, unpriv, chroot, wakeup, maxproc, command, args, options, comment}

Canonical parameter::

    {name, value, comment}

Each check returns the canonical value or raises with the instance, the entry and the field
(``PostfixWhere``). ``check_instances`` checks a host's instances together (no two inet services
on one endpoint). The data model is described in docs/postfix-data-model.md.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import (
    FilterError,
    Where,
    type_name,
)
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_syntax import (
    ISSPACE,
    SPACE,
    brace,
    braces_balanced,
    check_text,
    check_value,
)

Service = dict[str, Any]
Param = dict[str, Any]

SERVICE_TYPES = ("inet", "unix", "unix-dgram", "fifo", "pass")
SERVICE_FIELDS = (
    "name",
    "type",
    "private",
    "unpriv",
    "chroot",
    "wakeup",
    "maxproc",
    "command",
    "args",
    "options",
    "comment",
    "state",
)
PARAM_FIELDS = ("name", "value", "comment", "state")
STATES = ("present", "absent")
DEFAULT_FIELD = "-"


WELL_KNOWN_PORTS = {"smtp": 25, "submission": 587, "submissions": 465, "smtps": 465, "lmtp": 24}

PARAM_NAME = re.compile(r"[A-Za-z0-9_]+")
INSTANCE_NAME = re.compile(r"postfix-[A-Za-z0-9][A-Za-z0-9._-]*")
_LOCAL_SERVICE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_SERVICE_PORT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_][A-Za-z0-9_-]{0,62}(\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*")
_WAKEUP = re.compile(r"([0-9]+)(\??)")  # ASCII digits only: Postfix's strspn(cp, "0123456789")
_DIGITS = re.compile(r"[0-9]+")

_BAD_COMMENT_CHAR = re.compile(r"[\x00\ud800-\udfff]")

# Daemon options that take a value (postconf_master.c): a cluster with 'o' hides an override.
OPTION_WITH_VALUE = "o"


# --------------------------------------------------------------------------------------------
# Errors


_UNSET: Any = object()


class PostfixWhere:
    """Where a Postfix error happened: the filter (and the layer), the instance, the entry.

    Formats as ``<filter>: instance 'postfix-out', service 'smtp/inet': <message>`` through the
    shared error helper (errors.Where); ``at(entry)`` names another entry of the same instance.
    """

    def __init__(self, filter_name: str, instance: Any = _UNSET, entry: str | None = None) -> None:
        self.filter_name = filter_name
        self.instance = instance
        self.entry = entry

    def at(self, entry: str | None) -> PostfixWhere:
        return PostfixWhere(self.filter_name, self.instance, entry)

    def error(self, message: str) -> FilterError:
        context = None if self.instance is _UNSET else f"instance {self.instance!r}"
        if self.entry is not None:
            context = self.entry if context is None else f"{context}, {self.entry}"
        return Where(self.filter_name, context).error(message)


def service_label(entry: Mapping[str, Any], index: int) -> str:
    name, stype = entry.get("name"), entry.get("type")
    if isinstance(name, str) and name and stype in SERVICE_TYPES:
        return f"service '{name}/{stype}'"
    if isinstance(name, str) and name:
        return f"service '{name}' (item {index})"
    return f"service item {index}"


def param_label(entry: Mapping[str, Any], index: int) -> str:
    name = entry.get("name")
    return f"parameter {name!r}" if isinstance(name, str) else f"parameter item {index}"


# --------------------------------------------------------------------------------------------
# Field checks (each returns the canonical value or raises)


def check_instance_name(where: PostfixWhere, name: Any) -> str:
    if not isinstance(name, str) or not (name == "-" or INSTANCE_NAME.fullmatch(name)):
        raise where.at(None).error(
            f"instance name must be '-' or 'postfix-<name>' (letters, digits, '.', '_', '-'), got {name!r}"
        )
    return name


def check_state(where: PostfixWhere, state: Any) -> str:
    if state not in STATES:
        raise where.error(f"state must be 'present' or 'absent', got {state!r}")
    return str(state)


def _check_flag(where: PostfixWhere, field: str, value: Any) -> str:
    if value is True:
        return "y"
    if value is False:
        return "n"
    if value in ("y", "n", "-"):
        return str(value)
    raise where.error(f"{field} must be 'y', 'n', '-' or a boolean, got {value!r}")


def _check_wakeup(where: PostfixWhere, value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        if value == DEFAULT_FIELD:
            return value
        match = _WAKEUP.fullmatch(value)
        if match:
            return value if match.group(2) else int(value)
    raise where.error(f"wakeup must be an integer >= 0, an integer followed by '?', or '-', got {value!r}")


def _check_maxproc(where: PostfixWhere, value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (value == DEFAULT_FIELD or _DIGITS.fullmatch(value)):
        return value if value == DEFAULT_FIELD else int(value)
    raise where.error(f"maxproc must be an integer or '-', got {value!r}")


def _check_word(where: PostfixWhere, field: str, value: Any, *, allow_space: bool) -> str:
    """A command word, argument or option value: a string (or number) on one line."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise where.error(f"{field} must be a string, got {type_name(value)} {value!r}")
    text = str(value)
    check_text(where, field, text)
    if not allow_space and any(char in SPACE for char in text):
        raise where.error(f"{field} must not contain whitespace, got {text!r}")
    if text != text.strip(ISSPACE):
        raise where.error(f"{field} must not start or end with whitespace, got {text!r}")
    if not braces_balanced(text):
        raise where.error(f"{field} must have balanced '{{' and '}}', got {text!r}")
    return text


def _check_service_name(where: PostfixWhere, name: Any, stype: str) -> str:
    if not isinstance(name, str) or not name:
        raise where.error(f"name must be a non-empty string, got {name!r}")
    if stype == "inet":
        if inet_endpoint(name) is None:
            raise where.error(
                "name of an inet service must be a port ('2525'), a service name ('smtp'), "
                f"or 'host:port' ('127.0.0.1:10025', '[::1]:25'), got {name!r}"
            )
    elif not _LOCAL_SERVICE.fullmatch(name):
        raise where.error(
            f"name of a {stype} service must be letters, digits, '.', '_' and '-' "
            f"(not starting with '.' or '-'), got {name!r}"
        )
    return name


def option_text(value: Any) -> str:
    """The text of an option (-o) value: bools as yes/no, lists joined with ','."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(option_text(item) for item in value)
    return str(value)


def _check_options(where: PostfixWhere, options: Any) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise where.error(f"options must be a mapping of parameter name to value, got {options!r}")
    result: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not PARAM_NAME.fullmatch(key):
            raise where.error(f"options: parameter name must match [A-Za-z0-9_]+, got {key!r}")
        field = f"options.{key}"
        if value is None:
            raise where.error(f"{field}: value is null (null only removes an option while merging layers)")
        if isinstance(value, list | tuple):
            items = []
            for pos, item in enumerate(value):
                if isinstance(item, list | tuple | Mapping) or item is None:
                    raise where.error(f"{field}[{pos}] must be a string, number or boolean, got {item!r}")
                text = _check_word(where, f"{field}[{pos}]", option_text(item), allow_space=True)
                check_value(where, f"{field}[{pos}]", text, key)
                if not text:
                    raise where.error(f"{field}[{pos}] must not be empty")
                items.append(item)
            check_value(where, field, option_text(items), key)
            result[key] = list(items)
            continue
        if isinstance(value, Mapping | float):
            raise where.error(f"{field} must be a string, integer, boolean or list, got {value!r}")
        text = _check_word(where, field, option_text(value), allow_space=True)
        check_value(where, field, text, key)
        if text == "":
            raise where.error(
                f"{field}: value must not be empty (write [] for an explicitly empty value, "
                "or null to drop the override)"
            )
        result[key] = value
    return result


def _check_args(where: PostfixWhere, args: Any) -> list[str]:
    if isinstance(args, str) or not isinstance(args, list | tuple):
        raise where.error(f"args must be a list of strings, got {args!r}")
    result = [_check_word(where, f"args[{pos}]", arg, allow_space=True) for pos, arg in enumerate(args)]
    for pos, arg in enumerate(result):
        if arg == "":
            raise where.error(f"args[{pos}] must not be empty")
    # Leading arguments that start with '-' are daemon options, read as getopt(3) reads them
    # (postconf_master.c): a cluster such as '-vo' is '-v -o', '-oname=value' is '-o name=value',
    # a lone '-' takes the next argument as its value, and '--' ends the options.
    for pos, arg in enumerate(result):
        if arg == "--" or not arg.startswith("-"):
            break
        if arg == "-o":
            raise where.error(f"args[{pos}]: '-o' here would be read as an override; use options instead")
        if arg == "-" or OPTION_WITH_VALUE in arg[1:]:
            raise where.error(
                f"args[{pos}]: Postfix reads {arg!r} as daemon options letter by letter, and "
                f"{'a lone -' if arg == '-' else 'the letter o'} takes a value (an override); use options "
                "instead, or put '--' before arguments that start with '-'"
            )
    if result and result[0].startswith("#") and brace(result[0]) == result[0]:
        raise where.error(f"args[0] must not start with '#' (the line would be a comment), got {result[0]!r}")
    return result


def check_comment(where: PostfixWhere, comment: Any) -> str:
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise where.error(f"comment must be a string, got {comment!r}")
    if "\r" in comment:
        raise where.error(f"comment must not contain carriage returns, got {comment!r}")
    if _BAD_COMMENT_CHAR.search(comment):
        raise where.error(f"comment must not contain NUL characters or unpaired surrogates, got {comment!r}")
    return "\n".join(line.rstrip(ISSPACE) for line in comment.rstrip(ISSPACE).split("\n"))


def normalize_service(where: PostfixWhere, entry: Any, index: int) -> Service:
    """Check one complete service and return its canonical form (without state)."""
    if not isinstance(entry, Mapping):
        raise where.at(f"service item {index}").error(f"a service must be a mapping, got {entry!r}")
    here = where.at(service_label(entry, index))
    unknown = sorted(str(key) for key in entry if key not in SERVICE_FIELDS)
    if unknown:
        raise here.error(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(SERVICE_FIELDS)}")
    stype = entry.get("type")
    if stype not in SERVICE_TYPES:
        raise here.error(f"type must be one of {'|'.join(SERVICE_TYPES)}, got {stype!r}")
    name = _check_service_name(here, entry.get("name"), stype)
    check_state(here, entry.get("state", "present"))
    command = entry.get("command")
    if command is None:
        raise here.error("command is required (the program in Postfix's daemon directory, e.g. 'smtpd')")
    command = _check_word(here, "command", command, allow_space=False)
    if not command or command.startswith(("{", "-")):
        raise here.error(f"command must be a program name, got {command!r}")
    return {
        "name": name,
        "type": stype,
        "private": _check_flag(here, "private", entry.get("private", DEFAULT_FIELD)),
        "unpriv": _check_flag(here, "unpriv", entry.get("unpriv", DEFAULT_FIELD)),
        "chroot": _check_flag(here, "chroot", entry.get("chroot", DEFAULT_FIELD)),
        "wakeup": _check_wakeup(here, entry.get("wakeup", DEFAULT_FIELD)),
        "maxproc": _check_maxproc(here, entry.get("maxproc", DEFAULT_FIELD)),
        "command": command,
        "args": _check_args(here, entry.get("args") if entry.get("args") is not None else []),
        "options": _check_options(here, entry.get("options") if entry.get("options") is not None else {}),
        "comment": check_comment(here, entry.get("comment")),
    }


def normalize_services(where: PostfixWhere, services: Any) -> list[Service]:
    if services is None:
        return []
    if isinstance(services, str | Mapping) or not isinstance(services, Sequence):
        raise where.error(f"services must be a list of service mappings, got {type_name(services)}")
    result: list[Service] = []
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(services):
        if isinstance(entry, Mapping) and entry.get("state", "present") == "absent":
            here = where.at(service_label(entry, index))  # an absent entry needs only its key
            if not isinstance(entry.get("name"), str) or not entry.get("name"):
                raise here.error(f"name must be a non-empty string, got {entry.get('name')!r}")
            if entry.get("type") not in SERVICE_TYPES:
                raise here.error(f"type must be one of {'|'.join(SERVICE_TYPES)}, got {entry.get('type')!r}")
            continue
        service = normalize_service(where, entry, index)
        key = (service["name"], service["type"])
        if key in seen:
            raise where.at(f"service '{key[0]}/{key[1]}'").error(
                f"service/type pair is defined twice (items {seen[key]} and {index}); "
                "service/type pairs must be unique"
            )
        seen[key] = index
        result.append(service)
    return result


def main_value_text(value: Any) -> str:
    """main.cf value as one line: bools as yes/no, lists joined with ', '."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(main_value_text(item) for item in value)
    return str(value)


def check_main_text(where: PostfixWhere, field: str, text: str, name: str | None) -> None:
    check_text(where, field, text)
    if text != text.strip(ISSPACE):
        raise where.error(f"{field} must not start or end with whitespace, got {text!r}")
    check_value(where, field, text, name)
    if not braces_balanced(text):
        raise where.error(f"{field} must have balanced '{{' and '}}', got {text!r}")


def check_list_item(where: PostfixWhere, field: str, item: Any, name: str | None) -> None:
    """One element of a main.cf list value (value[N], items[N])."""
    if item is None or isinstance(item, list | tuple | Mapping | float):
        raise where.error(f"{field} must be a string, integer or boolean, got {item!r}")
    text = main_value_text(item)
    if not text or "\n" in text or "\r" in text or text != text.strip(ISSPACE):
        raise where.error(
            f"{field} must be non-empty, on one line, without leading or trailing whitespace, got {text!r}"
        )
    check_main_text(where, field, text, name)


def check_param_value(where: PostfixWhere, value: Any, name: str | None = None) -> Any:
    if value is None:
        raise where.error("value is null; give a value, or state: absent to remove the parameter")
    if isinstance(value, list | tuple):
        for pos, item in enumerate(value):
            check_list_item(where, f"value[{pos}]", item, name)
        check_main_text(where, "value", main_value_text(value), name)
        return list(value)
    if isinstance(value, Mapping | float) or not isinstance(value, str | int):
        raise where.error(f"value must be a string, integer, boolean or list, got {value!r}")
    check_main_text(where, "value", main_value_text(value), name)
    return value


def normalize_param(where: PostfixWhere, entry: Any, index: int) -> Param:
    if not isinstance(entry, Mapping):
        raise where.at(f"parameter item {index}").error(f"a parameter must be a mapping, got {entry!r}")
    here = where.at(param_label(entry, index))
    unknown = sorted(str(key) for key in entry if key not in PARAM_FIELDS)
    if unknown:
        raise here.error(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(PARAM_FIELDS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not PARAM_NAME.fullmatch(name):
        raise here.error(f"name must match [A-Za-z0-9_]+, got {name!r}")
    if check_state(here, entry.get("state", "present")) == "absent":
        return {"name": name, "value": entry.get("value"), "comment": ""}  # only the name counts
    if "value" not in entry:
        raise here.error("value is required")
    return {
        "name": name,
        "value": check_param_value(here, entry["value"], name),
        "comment": check_comment(here, entry.get("comment")),
    }


def normalize_params(where: PostfixWhere, params: Any) -> list[Param]:
    if params is None:
        return []
    if isinstance(params, str | Mapping) or not isinstance(params, Sequence):
        raise where.error(f"parameters must be a list of parameter mappings, got {type_name(params)}")
    result: list[Param] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(params):
        param = normalize_param(where, entry, index)
        if entry.get("state", "present") == "absent":
            continue
        if param["name"] in seen:
            raise where.at(f"parameter {param['name']!r}").error(
                f"parameter is defined twice (items {seen[param['name']]} and {index}); names must be unique"
            )
        seen[param["name"]] = index
        result.append(param)
    return result


# --------------------------------------------------------------------------------------------
# Checks of a whole instance list


def postfix_check_services(services: Any, instance: str = "-") -> Any:
    """Check an instance's services; return them unchanged or raise FilterError."""
    where = PostfixWhere("postfix_check_services", instance)
    check_instance_name(where, instance)
    normalize_services(where, services)
    return services


def inet_endpoint(name: str) -> tuple[str, str] | None:
    """Split an inet service name into (host, port); host '*' means all addresses."""
    host, port = "*", name
    if name.startswith("["):
        end = name.find("]:")
        if end < 0:
            return None
        host, port = name[1:end], name[end + 2 :]
        try:
            host = str(ipaddress.IPv6Address(host))
        except ValueError:
            return None
        host = f"[{host}]"
    elif ":" in name:
        host, port = name.rsplit(":", 1)
        if host != "*":
            try:
                host = str(ipaddress.IPv4Address(host))
            except ValueError:
                if not _HOSTNAME.fullmatch(host) or _DIGITS.fullmatch(host.replace(".", "")):
                    return None
                host = host.lower()
    if _DIGITS.fullmatch(port):
        if not 0 < int(port) < 65536:
            return None
        port = str(int(port))
    elif _SERVICE_PORT_NAME.fullmatch(port):
        port = str(WELL_KNOWN_PORTS.get(port, port))
    else:
        return None
    return host, port


def _interfaces(where: PostfixWhere, instance: Mapping[str, Any]) -> list[str]:
    value = instance.get("inet_interfaces")
    if value is None:
        for param in instance.get("maincf") or []:
            if isinstance(param, Mapping) and param.get("name") == "inet_interfaces":
                value = param.get("value")
    if value is None:
        return ["*"]
    items = value if isinstance(value, list | tuple) else re.split(r"[\s,]+", str(value).strip())
    hosts: list[str] = []
    for item in items:
        text = str(item).strip().lower()
        if text in ("all", ""):
            return ["*"]
        if text == "loopback-only":
            hosts += ["127.0.0.1", "[::1]"]
            continue
        try:
            address = ipaddress.ip_address(text.strip("[]"))
        except ValueError:
            hosts.append(text)
            continue
        hosts.append(f"[{address}]" if address.version == 6 else str(address))
    if not hosts:
        raise where.error(f"inet_interfaces is empty: {value!r}")
    return hosts


def postfix_check_instances(instances: Any) -> Any:
    """Raise when two inet services (same or different instances) listen on the same endpoint."""
    where = PostfixWhere("postfix_check_instances")
    if isinstance(instances, str | Mapping) or not isinstance(instances, Sequence):
        raise where.error(f"instances must be a list of instance mappings, got {type_name(instances)}")
    listeners: list[tuple[str, str, str, str]] = []  # (host, port, instance, service label)
    names: set[str] = set()
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            raise where.error(f"item {index}: an instance must be a mapping, got {instance!r}")
        name = check_instance_name(where, instance.get("name"))
        here = PostfixWhere(where.filter_name, name)
        if name in names:
            raise here.error("instance is defined twice; instance names must be unique")
        names.add(name)
        if instance.get("state", "present") == "absent":
            continue
        services = instance.get("services", instance.get("mastercf"))
        for service in normalize_services(here, services):
            if service["type"] != "inet":
                continue
            label = f"{service['name']}/inet"
            host, port = inet_endpoint(service["name"]) or ("*", service["name"])
            hosts = _interfaces(here, instance) if host == "*" else [host]
            for one_host in hosts:
                for other_host, other_port, other_inst, other_label in listeners:
                    if port == other_port and (one_host == other_host or "*" in (one_host, other_host)):
                        shown = "all addresses" if one_host == "*" else one_host
                        other_shown = "all addresses" if other_host == "*" else other_host
                        raise here.at(f"service {label!r}").error(
                            f"listens on {shown} port {port}, which instance {other_inst!r}, "
                            f"service {other_label!r} already uses ({other_shown} port {other_port}); "
                            "each inet endpoint must be used once"
                        )
            listeners.extend((one_host, port, name, label) for one_host in hosts)
    return instances
