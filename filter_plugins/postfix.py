# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Postfix configuration as data: merge layers, check, and render main.cf and master.cf.

One file on purpose: Ansible loads every ``.py`` in ``filter_plugins/`` as a plugin.  The
documentation that ``ansible-doc -t filter <name>`` shows lives in the adjacent ``<name>.yml``
files (the way ansible-core documents the many filters of one plugin file).  The data model is
described in docs/postfix-data-model.md.

Canonical service (what the merge and parse filters return)::

    {name, type, private, unpriv, chroot, wakeup, maxproc, command, args, options, comment}

Canonical parameter::

    {name, value, comment}
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

try:
    from ansible.errors import AnsibleFilterError
except ImportError:  # pragma: no cover - only without ansible-core installed

    class AnsibleFilterError(Exception):  # type: ignore[no-redef]
        """Stand-in so the module imports without Ansible."""


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
INSTANCE_LIST_FIELDS = ("maincf", "mastercf")
STATES = ("present", "absent")
DEFAULT_FIELD = "-"

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

WELL_KNOWN_PORTS = {"smtp": 25, "submission": 587, "submissions": 465, "smtps": 465, "lmtp": 24}

_PARAM_NAME = re.compile(r"[A-Za-z0-9_]+")
_INSTANCE_NAME = re.compile(r"postfix-[A-Za-z0-9][A-Za-z0-9._-]*")
_LOCAL_SERVICE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*")
_SERVICE_PORT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_HOSTNAME = re.compile(r"(?=.{1,253}$)[A-Za-z0-9_][A-Za-z0-9_-]{0,62}(\.[A-Za-z0-9_][A-Za-z0-9_-]{0,62})*")
_WAKEUP = re.compile(r"([0-9]+)(\??)")  # ASCII digits only: Postfix's strspn(cp, "0123456789")
_DIGITS = re.compile(r"[0-9]+")
_NAME_RUN = re.compile(r"[A-Za-z0-9_]+")  # a parameter name after '$' (Postfix's ISALNUM is ASCII only)
# Control characters (a tab too: postconf shows it as a space) and lone surrogates, which cannot be
# written as UTF-8.
_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")

_BAD_COMMENT_CHAR = re.compile(r"[\x00\ud800-\udfff]")

SPACE = " \t\r\n"  # Postfix's CHARS_SPACE: what separates words of a value and fields of master.cf
ISSPACE = " \t\n\v\f\r"  # Postfix's ISSPACE() (ASCII only): what it trims and what continues a line
RELATIONAL_OPERATORS = ("==", "!=", "<", "<=", ">=", ">")
MAX_MACRO_NESTING = 20  # Postfix gives up at 100 nested macro calls; nobody needs 20
MAX_BRACE_NESTING = 20
# Daemon options that take a value (postconf_master.c): a cluster with 'o' hides an override.
OPTION_WITH_VALUE = "o"


# --------------------------------------------------------------------------------------------
# Errors


_UNSET: Any = object()


class _Where:
    """Where an error happened: filter, instance, entry.  Formats the message prefix."""

    def __init__(self, filter_name: str, instance: Any = _UNSET, entry: str | None = None) -> None:
        self.filter_name = filter_name
        self.instance = instance
        self.entry = entry

    def at(self, entry: str | None) -> _Where:
        return _Where(self.filter_name, self.instance, entry)

    def error(self, message: str) -> AnsibleFilterError:
        head = self.filter_name
        if self.instance is not _UNSET:
            head += f": instance {self.instance!r}"
        if self.entry is not None:
            head += f", {self.entry}" if self.instance is not _UNSET else f": {self.entry}"
        return AnsibleFilterError(f"{head}: {message}")


def _type_name(value: Any) -> str:
    """The builtin type name of a value (Ansible 2.19 passes tagged subclasses of str, dict, list)."""
    return next(t.__name__ for t in type(value).__mro__ if t.__module__ == "builtins")


def _service_label(entry: Mapping[str, Any], index: int) -> str:
    name, stype = entry.get("name"), entry.get("type")
    if isinstance(name, str) and name and stype in SERVICE_TYPES:
        return f"service '{name}/{stype}'"
    if isinstance(name, str) and name:
        return f"service '{name}' (item {index})"
    return f"service item {index}"


def _param_label(entry: Mapping[str, Any], index: int) -> str:
    name = entry.get("name")
    return f"parameter {name!r}" if isinstance(name, str) else f"parameter item {index}"


# --------------------------------------------------------------------------------------------
# Postfix's syntax: one definition of a word, a {...} group, a value and a macro expression,
# used by the checks and by postfix_parse_master_cf.  Taken from postconf(5), master(5) and the
# Postfix 3.7 sources they describe (mac_parse.c, mac_expand.c, mystrtok.c, balpar.c, extpar.c,
# readlline.c, postconf_dbms.c, postconf_master.c).


class _SyntaxProblem(Exception):
    """What Postfix would reject or misread in a value; the message completes 'field: ...'."""


def _space_at(text: str, pos: int) -> int:
    """The position after a run of Postfix separators (CHARS_SPACE) from pos."""
    while pos < len(text) and text[pos] in SPACE:
        pos += 1
    return pos


def _group_end(text: str, pos: int) -> int:
    """balpar(): the position after the '}' that closes the '{' at pos, or -1 when it is never closed."""
    depth = 0
    for end in range(pos, len(text)):
        if text[end] == "{":
            depth += 1
        elif text[end] == "}":
            depth -= 1
            if depth == 0:
                return end + 1
    return -1


def _words(text: str, separators: str = SPACE + ",") -> list[str]:
    """mystrtokq(): split at separators outside {...}; a '}' without its '{' is an ordinary character."""
    words, depth, start = [], 0, 0
    for pos, char in enumerate(text):
        if char == "{":
            depth += 1
        elif char == "}" and depth > 0:
            depth -= 1
        elif depth == 0 and char in separators:
            words.append(text[start:pos])
            start = pos + 1
    words.append(text[start:])
    return [word for word in words if word]


def _braces_balanced(text: str) -> bool:
    depth = 0
    for char in text:
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth < 0:
                return False
    return depth == 0


def _name_end(text: str, pos: int) -> int:
    """The end of a run of ASCII letters, digits and '_' (a parameter name) from pos."""
    match = _NAME_RUN.match(text, pos)
    return match.end() if match else pos


def _macro_scan(
    text: str, depth: int = 0, names: set[str] | None = None
) -> tuple[list[tuple[int, int]], list[str]]:
    """mac_parse() as postconf runs it (both branches of every conditional are parsed).

    Returns the spans of the macro expressions of ``text`` and the texts that a conditional
    expression may produce, nested ones included; adds the names whose values are expanded
    (not those only tested, as in ${name?text}) to ``names``; raises _SyntaxProblem.
    """
    names = set() if names is None else names
    if depth > MAX_MACRO_NESTING:
        raise _SyntaxProblem(f"macro expressions are nested more than {MAX_MACRO_NESTING} deep, got {text!r}")
    spans: list[tuple[int, int]] = []
    results: list[str] = []
    pos = 0
    while (pos := text.find("$", pos)) >= 0:
        nxt = text[pos + 1 : pos + 2]
        if nxt == "$":
            pos += 2
            continue
        if nxt in ("{", "("):
            close, level, end = "}" if nxt == "{" else ")", 1, pos + 2
            while end < len(text) and level:
                level += {nxt: 1, close: -1}.get(text[end], 0)
                end += 1
            body = text[pos + 2 : end - 1]
            if level or not body.strip(SPACE):
                raise _SyntaxProblem(f"macro reference at {text[pos:]!r} is not closed or has no name")
            results += _macro_expression(body, depth + 1, names)
        else:
            end = _name_end(text, pos + 1)
            names.add(text[pos + 1 : end])
            if end == pos + 1:
                raise _SyntaxProblem(
                    "'$' must start a parameter reference ($name, ${name}, $(name)) or be doubled ('$$' "
                    f"is a literal '$'), got {text!r}"
                )
        spans.append((pos, end))
        pos = end
    return spans, results


def _curly_operand(body: str, pos: int) -> tuple[str, int] | None:
    """A {text} operand after optional separators: (text, position after it and the separators after it)."""
    start = _space_at(body, pos)
    if start >= len(body) or body[start] != "{":
        return None
    end = _group_end(body, start)
    if end < 0:
        raise _SyntaxProblem(f"unbalanced {{}} in macro expression {body!r}")
    return body[start + 1 : end - 1], _space_at(body, end)


def _macro_expression(body: str, depth: int, names: set[str]) -> list[str]:
    """The inside of ${...} or $(...): name, name?text, name:text, name?{a}:{b}, {a}==... forms."""
    left = _curly_operand(body, 0)
    if left is not None:  # relational expression: ${{a} == {b} ? {c} : {d}}
        operand, pos = left
        op_end = pos
        while op_end < len(body) and body[op_end] in "<>!=?+-*/~&|%":
            op_end += 1
        if body[pos:op_end] not in RELATIONAL_OPERATORS:
            raise _SyntaxProblem(
                f"a relational macro expression needs one of {', '.join(RELATIONAL_OPERATORS)} after "
                f"{{{operand}}}, got {body!r}"
            )
        right = _curly_operand(body, op_end) if body[op_end : op_end + 1] in ("{", *SPACE) else None
        if right is None:
            raise _SyntaxProblem(
                f"a relational macro expression needs a {{text}} operand on the right, got {body!r}"
            )
        _macro_scan(operand, depth + 1, names)
        _macro_scan(right[0], depth + 1, names)
        pos = right[1]
        if pos == len(body):
            return []
        if body[pos] not in "?:":
            raise _SyntaxProblem(f"'?' or ':' must follow a relational macro expression, got {body!r}")
    else:
        start = _space_at(body, 0)
        end = _name_end(body, start)
        pos = _space_at(body, end)
        if end == start:
            raise _SyntaxProblem(f"macro reference at {body!r} has no parameter name")
        if pos == len(body):
            names.add(body[start:end])
            return []
        if body[pos] not in "?:":
            raise _SyntaxProblem(
                f"a macro reference is a parameter name (letters, digits, '_'), optionally followed by "
                f"'?' or ':' and a value, got {body!r}"
            )
    results: list[str] = []
    if body[pos] == "?":
        operand = _curly_operand(body, pos + 1)
        text, pos = operand if operand else (body[pos + 1 :], len(body))
        results += [text, *_macro_scan(text, depth + 1, names)[1]]
        if pos == len(body):
            return results
        if body[pos] != ":":
            raise _SyntaxProblem(f"':' or the end must follow {{{text}}} in a macro expression, got {body!r}")
    operand = _curly_operand(body, pos + 1)
    text, pos = operand if operand else (body[pos + 1 :], len(body))
    results += [text, *_macro_scan(text, depth + 1, names)[1]]
    if pos != len(body):
        raise _SyntaxProblem(f"unexpected text after {{{text}}} in a macro expression, got {body!r}")
    return results


def _without_spans(text: str, spans: list[tuple[int, int]], filler: str) -> str:
    out, last = [], 0
    for start, end in spans:
        out += [text[last:start], filler]
        last = end
    return "".join([*out, text[last:]])


def _group_problem(text: str, depth: int = 0) -> bool:
    """True when postconf warns about a {...} group (postconf_dbms.c, on the expanded value).

    A word (split at blanks and ',' outside braces) that starts with '{' must be one group, and
    so must the part after the first ':' of a type:name word; the group's inside is read the same way.
    """
    if depth > MAX_BRACE_NESTING:
        return True
    for word in _words(text):
        inside = word
        if not word.startswith("{"):
            head, sep, inside = word.partition(":")
            while sep and head == "proxy":
                head, sep, inside = inside.partition(":")
            if not inside.startswith("{"):
                continue
        end = _group_end(inside, 0)
        if end != len(inside) or _group_problem(inside[1:-1], depth + 1):
            return True
    return False


def _value_problem(text: str, own_name: str | None = None) -> str | None:
    """What Postfix would reject or misread in a main.cf or -o value of parameter own_name, or None."""
    names: set[str] = set()
    try:
        spans, results = _macro_scan(text, names=names)
    except _SyntaxProblem as problem:
        return str(problem)
    if own_name in names:
        return f"the value expands its own parameter (${own_name}), a loop Postfix rejects, got {text!r}"
    for result in results:
        literal = _without_spans(result, _macro_scan(result)[0], "")
        if "{" in literal or "}" in literal:
            return (
                f"the text {result!r} of a conditional macro must not contain '{{' or '}}' (Postfix "
                f"reads the braces of the expanded value), got {text!r}"
            )
    # postconf reads the groups of the expanded value.  The texts of conditionals have no braces
    # (above), so what a reference expands to matters only as empty, a word, or a blank.
    expansions = ("x", "", " ") if spans else ("",)
    for pos, expansion in enumerate(expansions):
        if _group_problem(_without_spans(text, spans, expansion)):
            return (
                "a word that starts with '{' must end with its matching '}' (Postfix reads it as one "
                f"{{...}} group{', also after a macro reference expands' if pos else ''}), got {text!r}"
            )
    return None


def _check_value(where: _Where, field: str, text: str, own_name: str | None = None) -> None:
    problem = _value_problem(text, own_name)
    if problem:
        raise where.error(f"{field}: {problem}")


def _check_text(where: _Where, field: str, text: str) -> None:
    """Characters: one line, no control character (a tab is a blank), valid Unicode."""
    if "\n" in text or "\r" in text:
        raise where.error(f"{field} must be on one line (no newline), got {text!r}")
    bad = _BAD_CHAR.search(text)
    if bad:
        raise where.error(
            f"{field} must not contain control characters or unpaired surrogates, got {bad.group()!r} "
            f"in {text!r}"
        )


# --------------------------------------------------------------------------------------------
# Field checks (each returns the canonical value or raises)


def _check_instance_name(where: _Where, name: Any) -> str:
    if not isinstance(name, str) or not (name == "-" or _INSTANCE_NAME.fullmatch(name)):
        raise where.at(None).error(
            f"instance name must be '-' or 'postfix-<name>' (letters, digits, '.', '_', '-'), got {name!r}"
        )
    return name


def _check_state(where: _Where, state: Any) -> str:
    if state not in STATES:
        raise where.error(f"state must be 'present' or 'absent', got {state!r}")
    return str(state)


def _check_flag(where: _Where, field: str, value: Any) -> str:
    if value is True:
        return "y"
    if value is False:
        return "n"
    if value in ("y", "n", "-"):
        return str(value)
    raise where.error(f"{field} must be 'y', 'n', '-' or a boolean, got {value!r}")


def _check_wakeup(where: _Where, value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        if value == DEFAULT_FIELD:
            return value
        match = _WAKEUP.fullmatch(value)
        if match:
            return value if match.group(2) else int(value)
    raise where.error(f"wakeup must be an integer >= 0, an integer followed by '?', or '-', got {value!r}")


def _check_maxproc(where: _Where, value: Any) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and (value == DEFAULT_FIELD or _DIGITS.fullmatch(value)):
        return value if value == DEFAULT_FIELD else int(value)
    raise where.error(f"maxproc must be an integer or '-', got {value!r}")


def _check_word(where: _Where, field: str, value: Any, *, allow_space: bool) -> str:
    """A command word, argument or option value: a string (or number) on one line."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise where.error(f"{field} must be a string, got {_type_name(value)} {value!r}")
    text = str(value)
    _check_text(where, field, text)
    if not allow_space and any(char in SPACE for char in text):
        raise where.error(f"{field} must not contain whitespace, got {text!r}")
    if text != text.strip(ISSPACE):
        raise where.error(f"{field} must not start or end with whitespace, got {text!r}")
    if not _braces_balanced(text):
        raise where.error(f"{field} must have balanced '{{' and '}}', got {text!r}")
    return text


def _check_service_name(where: _Where, name: Any, stype: str) -> str:
    if not isinstance(name, str) or not name:
        raise where.error(f"name must be a non-empty string, got {name!r}")
    if stype == "inet":
        if _inet_endpoint(name) is None:
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


def _option_text(value: Any) -> str:
    """The text of an option (-o) value: bools as yes/no, lists joined with ','."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(_option_text(item) for item in value)
    return str(value)


def _check_options(where: _Where, options: Any) -> dict[str, Any]:
    if not isinstance(options, Mapping):
        raise where.error(f"options must be a mapping of parameter name to value, got {options!r}")
    result: dict[str, Any] = {}
    for key, value in options.items():
        if not isinstance(key, str) or not _PARAM_NAME.fullmatch(key):
            raise where.error(f"options: parameter name must match [A-Za-z0-9_]+, got {key!r}")
        field = f"options.{key}"
        if value is None:
            raise where.error(f"{field}: value is null (null only removes an option while merging layers)")
        if isinstance(value, list | tuple):
            items = []
            for pos, item in enumerate(value):
                if isinstance(item, list | tuple | Mapping) or item is None:
                    raise where.error(f"{field}[{pos}] must be a string, number or boolean, got {item!r}")
                text = _check_word(where, f"{field}[{pos}]", _option_text(item), allow_space=True)
                _check_value(where, f"{field}[{pos}]", text, key)
                if not text:
                    raise where.error(f"{field}[{pos}] must not be empty")
                items.append(item)
            _check_value(where, field, _option_text(items), key)
            result[key] = list(items)
            continue
        if isinstance(value, Mapping | float):
            raise where.error(f"{field} must be a string, integer, boolean or list, got {value!r}")
        text = _check_word(where, field, _option_text(value), allow_space=True)
        _check_value(where, field, text, key)
        if text == "":
            raise where.error(
                f"{field}: value must not be empty (write [] for an explicitly empty value, "
                "or null to drop the override)"
            )
        result[key] = value
    return result


def _check_args(where: _Where, args: Any) -> list[str]:
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
    if result and result[0].startswith("#") and _brace(result[0]) == result[0]:
        raise where.error(f"args[0] must not start with '#' (the line would be a comment), got {result[0]!r}")
    return result


def _check_comment(where: _Where, comment: Any) -> str:
    if comment is None:
        return ""
    if not isinstance(comment, str):
        raise where.error(f"comment must be a string, got {comment!r}")
    if "\r" in comment:
        raise where.error(f"comment must not contain carriage returns, got {comment!r}")
    if _BAD_COMMENT_CHAR.search(comment):
        raise where.error(f"comment must not contain NUL characters or unpaired surrogates, got {comment!r}")
    return "\n".join(line.rstrip(ISSPACE) for line in comment.rstrip(ISSPACE).split("\n"))


def _normalize_service(where: _Where, entry: Any, index: int) -> Service:
    """Check one complete service and return its canonical form (without state)."""
    if not isinstance(entry, Mapping):
        raise where.at(f"service item {index}").error(f"a service must be a mapping, got {entry!r}")
    here = where.at(_service_label(entry, index))
    unknown = sorted(str(key) for key in entry if key not in SERVICE_FIELDS)
    if unknown:
        raise here.error(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(SERVICE_FIELDS)}")
    stype = entry.get("type")
    if stype not in SERVICE_TYPES:
        raise here.error(f"type must be one of {'|'.join(SERVICE_TYPES)}, got {stype!r}")
    name = _check_service_name(here, entry.get("name"), stype)
    _check_state(here, entry.get("state", "present"))
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
        "comment": _check_comment(here, entry.get("comment")),
    }


def _normalize_services(where: _Where, services: Any) -> list[Service]:
    if services is None:
        return []
    if isinstance(services, str | Mapping) or not isinstance(services, Sequence):
        raise where.error(f"services must be a list of service mappings, got {_type_name(services)}")
    result: list[Service] = []
    seen: dict[tuple[str, str], int] = {}
    for index, entry in enumerate(services):
        if isinstance(entry, Mapping) and entry.get("state", "present") == "absent":
            here = where.at(_service_label(entry, index))  # an absent entry needs only its key
            if not isinstance(entry.get("name"), str) or not entry.get("name"):
                raise here.error(f"name must be a non-empty string, got {entry.get('name')!r}")
            if entry.get("type") not in SERVICE_TYPES:
                raise here.error(f"type must be one of {'|'.join(SERVICE_TYPES)}, got {entry.get('type')!r}")
            continue
        service = _normalize_service(where, entry, index)
        key = (service["name"], service["type"])
        if key in seen:
            raise where.at(f"service '{key[0]}/{key[1]}'").error(
                f"service/type pair is defined twice (items {seen[key]} and {index}); "
                "service/type pairs must be unique"
            )
        seen[key] = index
        result.append(service)
    return result


def _main_value_text(value: Any) -> str:
    """main.cf value as one line: bools as yes/no, lists joined with ', '."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(_main_value_text(item) for item in value)
    return str(value)


def _check_main_text(where: _Where, field: str, text: str, name: str | None) -> None:
    _check_text(where, field, text)
    if text != text.strip(ISSPACE):
        raise where.error(f"{field} must not start or end with whitespace, got {text!r}")
    _check_value(where, field, text, name)
    if not _braces_balanced(text):
        raise where.error(f"{field} must have balanced '{{' and '}}', got {text!r}")


def _check_list_item(where: _Where, field: str, item: Any, name: str | None) -> None:
    """One element of a main.cf list value (value[N], items[N])."""
    if item is None or isinstance(item, list | tuple | Mapping | float):
        raise where.error(f"{field} must be a string, integer or boolean, got {item!r}")
    text = _main_value_text(item)
    if not text or "\n" in text or "\r" in text or text != text.strip(ISSPACE):
        raise where.error(
            f"{field} must be non-empty, on one line, without leading or trailing whitespace, got {text!r}"
        )
    _check_main_text(where, field, text, name)


def _check_param_value(where: _Where, value: Any, name: str | None = None) -> Any:
    if value is None:
        raise where.error("value is null; give a value, or state: absent to remove the parameter")
    if isinstance(value, list | tuple):
        for pos, item in enumerate(value):
            _check_list_item(where, f"value[{pos}]", item, name)
        _check_main_text(where, "value", _main_value_text(value), name)
        return list(value)
    if isinstance(value, Mapping | float) or not isinstance(value, str | int):
        raise where.error(f"value must be a string, integer, boolean or list, got {value!r}")
    _check_main_text(where, "value", _main_value_text(value), name)
    return value


def _normalize_param(where: _Where, entry: Any, index: int) -> Param:
    if not isinstance(entry, Mapping):
        raise where.at(f"parameter item {index}").error(f"a parameter must be a mapping, got {entry!r}")
    here = where.at(_param_label(entry, index))
    unknown = sorted(str(key) for key in entry if key not in PARAM_FIELDS)
    if unknown:
        raise here.error(f"unknown field(s) {', '.join(unknown)}; expected {', '.join(PARAM_FIELDS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
        raise here.error(f"name must match [A-Za-z0-9_]+, got {name!r}")
    if _check_state(here, entry.get("state", "present")) == "absent":
        return {"name": name, "value": entry.get("value"), "comment": ""}  # only the name counts
    if "value" not in entry:
        raise here.error("value is required")
    return {
        "name": name,
        "value": _check_param_value(here, entry["value"], name),
        "comment": _check_comment(here, entry.get("comment")),
    }


def _normalize_params(where: _Where, params: Any) -> list[Param]:
    if params is None:
        return []
    if isinstance(params, str | Mapping) or not isinstance(params, Sequence):
        raise where.error(f"parameters must be a list of parameter mappings, got {_type_name(params)}")
    result: list[Param] = []
    seen: dict[str, int] = {}
    for index, entry in enumerate(params):
        param = _normalize_param(where, entry, index)
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
# Merging


def _layers(where: _Where, layers: Any) -> list[list[Any]]:
    if layers is None:
        return []
    if isinstance(layers, str | Mapping) or not isinstance(layers, Sequence):
        raise where.error(f"layers must be a list of lists, got {_type_name(layers)}")
    result = []
    for pos, layer in enumerate(layers):
        if layer is None:
            continue
        if isinstance(layer, str | Mapping) or not isinstance(layer, Sequence):
            raise where.error(f"layer {pos} must be a list (or null), got {_type_name(layer)}")
        result.append(list(layer))
    return result


def _merge_by_key(
    where: _Where,
    layers: Any,
    key_of: Any,
    merge_entry: Any,
) -> list[dict[str, Any]]:
    """Merge lists of mappings by key.  Absent entries keep their slot but start afresh."""
    merged: dict[Any, dict[str, Any] | None] = {}
    for layer_pos, layer in enumerate(_layers(where, layers)):
        for index, entry in enumerate(layer):
            key = key_of(where, entry, layer_pos, index)
            label = f"layer {layer_pos} item {index}"
            state = entry.get("state", "present")
            if state not in STATES:
                raise where.at(key[1]).error(f"state must be 'present' or 'absent', got {state!r} ({label})")
            if state == "absent":
                merged[key[0]] = None
                continue
            current = merged.get(key[0])
            try:
                merged[key[0]] = merge_entry(current or {}, entry)
            except ValueError as exc:
                raise where.at(key[1]).error(f"{exc} ({label})") from None
    return [entry for entry in merged.values() if entry is not None]


def _service_key(where: _Where, entry: Any, layer: int, index: int) -> tuple[tuple[str, str], str]:
    if not isinstance(entry, Mapping):
        raise where.at(f"service (layer {layer} item {index})").error(
            f"a service must be a mapping, got {entry!r}"
        )
    name, stype = entry.get("name"), entry.get("type")
    if not isinstance(name, str) or not name:
        raise where.at(f"service (layer {layer} item {index})").error(
            f"name is required to merge services (key: name and type), got {name!r}"
        )
    if stype not in SERVICE_TYPES:
        raise where.at(f"service '{name}' (layer {layer} item {index})").error(
            f"type must be one of {'|'.join(SERVICE_TYPES)}, got {stype!r}"
        )
    return (name, stype), f"service '{name}/{stype}'"


def _merge_service(current: dict[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(current)
    for field, value in entry.items():
        if field == "options" and isinstance(value, Mapping) and isinstance(result.get("options"), Mapping):
            options = dict(result["options"])
            for opt, opt_value in value.items():
                if opt_value is None:
                    options.pop(opt, None)
                else:
                    options[opt] = opt_value
            result["options"] = options
        elif field == "options" and isinstance(value, Mapping):
            result["options"] = {opt: val for opt, val in value.items() if val is not None}
        else:
            result[field] = value
    result.pop("state", None)
    return result


def _param_key(where: _Where, entry: Any, layer: int, index: int) -> tuple[str, str]:
    if not isinstance(entry, Mapping):
        raise where.at(f"parameter (layer {layer} item {index})").error(
            f"a parameter must be a mapping, got {entry!r}"
        )
    name = entry.get("name")
    if not isinstance(name, str) or not _PARAM_NAME.fullmatch(name):
        raise where.at(f"parameter (layer {layer} item {index})").error(
            f"name must match [A-Za-z0-9_]+, got {name!r}"
        )
    return name, f"parameter {name!r}"


def _merge_param(current: dict[str, Any], entry: Mapping[str, Any]) -> dict[str, Any]:
    result = dict(current)
    result.update((field, value) for field, value in entry.items() if field != "items")
    if entry.get("items") is not None:
        result["value"] = _apply_items(result.get("value"), entry["items"])
    result.pop("state", None)
    return result


def _merge_services(where: _Where, layers: Any) -> list[Service]:
    return _normalize_services(where, _merge_by_key(where, layers, _service_key, _merge_service))


def _merge_params(where: _Where, layers: Any) -> list[Param]:
    for layer_pos, layer in enumerate(_layers(where, layers)):
        for index, entry in enumerate(layer):
            _name, label = _param_key(where, entry, layer_pos, index)
            if entry.get("state", "present") != "absent" and "value" in entry and entry["value"] is None:
                raise where.at(label).error(
                    f"value is null (layer {layer_pos}); "
                    "give a value, or state: absent to remove the parameter"
                )
    return _normalize_params(where, _merge_by_key(where, layers, _param_key, _merge_param))


def postfix_merge_services(layers: Any, instance: str = "-") -> list[Service]:
    """Merge layers of master.cf services by (name, type); return canonical present services."""
    where = _Where("postfix_merge_services", instance)
    _check_instance_name(where, instance)
    return _merge_services(where, layers)


def postfix_merge_params(layers: Any, instance: str = "-") -> list[Param]:
    """Merge layers of main.cf parameters by name; return canonical present parameters."""
    where = _Where("postfix_merge_params", instance)
    _check_instance_name(where, instance)
    return _merge_params(where, layers)


# --------------------------------------------------------------------------------------------
# The assembly: every layer of the postfix role, in one documented order, to ready instances

# The role's inputs (variable names are the keys of postfix_instances' input mapping).
ASSEMBLY_INPUTS = (
    "__postfix_base_mastercf",
    "postfix__maincf",
    "postfix__mastercf",
    "postfix__profiles",
    "postfix__custom_profiles",
    "postfix__dependent_profiles",
    "postfix__instances",
    "postfix__dependent_instances",
    "postfix__group_instances",
    "postfix__host_instances",
    "postfix__myhostname",
    "postfix__instance_group",
    "postfix__tls_self_signed",
    "postfix__staging_dir",
)
# The instance layers, in merge order (later wins).
INSTANCE_LAYERS = (
    "postfix__instances",
    "postfix__dependent_instances",
    "postfix__group_instances",
    "postfix__host_instances",
)
INSTANCE_FIELDS = (
    "name",
    "state",
    "profile",
    "group",
    "myhostname",
    "inet_interfaces",
    "port",
    "mynetworks",
    "relay_next_hops",
    "tls_cert_file",
    "tls_key_file",
    "maincf",
    "mastercf",
)
COMPUTED = "computed (the role's parameters from the instance's keys)"

Layer = tuple[str, Any]  # (where the layer comes from, e.g. 'postfix__host_instances[1].maincf', list)


def _is_list(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str | Mapping)


def _check_items(where: _Where, items: Any, name: str | None = None) -> None:
    """The `items` of a parameter: strings (added) or {name, state} mappings."""
    if not _is_list(items):
        raise where.error(f"items must be a list, got {_type_name(items)}")
    for pos, item in enumerate(items):
        value = item
        if isinstance(item, Mapping):
            unknown = sorted(str(key) for key in item if key not in ("name", "state"))
            if unknown:
                raise where.error(
                    f"items[{pos}]: unknown field(s) {', '.join(unknown)}; expected name, state"
                )
            if item.get("state", "present") not in STATES:
                raise where.error(f"items[{pos}]: state must be 'present' or 'absent', got {item['state']!r}")
            if item.get("name") is None:
                raise where.error(f"items[{pos}]: name is required")
            value = item["name"]
        _check_list_item(where, f"items[{pos}]", value, name)


def _apply_items(value: Any, items: Sequence[Any]) -> list[Any]:
    """Add (at the end, once) or remove (state: absent) items of a list value."""
    if value is None or value in ("", []):
        result: list[Any] = []
    elif _is_list(value):
        result = list(value)
    else:
        raise ValueError(
            f"items extend a list value, but the value so far is {value!r}; write that value as a list"
        )
    for item in items:
        state = item.get("state", "present") if isinstance(item, Mapping) else "present"
        value = item["name"] if isinstance(item, Mapping) else item
        text = _main_value_text(value)
        if state == "absent":
            result = [old for old in result if _main_value_text(old) != text]
        elif text not in (_main_value_text(old) for old in result):
            result.append(value)
    return result


def _source_check_param(where: _Where, entry: Any, index: int) -> None:
    """Check one parameter entry as written in its layer (it may name only some fields)."""
    if not isinstance(entry, Mapping):
        raise where.at(f"parameter item {index}").error(f"a parameter must be a mapping, got {entry!r}")
    probe = {key: value for key, value in entry.items() if key != "items"}
    if entry.get("state", "present") == "absent":
        probe = {"name": entry.get("name"), "state": "absent", "value": ""}
    elif "value" not in probe:
        probe["value"] = ""  # the value may come from an earlier layer
    _normalize_param(where, probe, index)
    if "items" in entry:
        _check_items(where.at(_param_label(entry, index)), entry["items"], entry.get("name"))


def _source_check_service(where: _Where, entry: Any, index: int) -> None:
    """Check one service entry as written in its layer (it may name only some fields)."""
    if not isinstance(entry, Mapping):
        raise where.at(f"service item {index}").error(f"a service must be a mapping, got {entry!r}")
    if entry.get("state", "present") == "absent":
        _normalize_services(
            where, [{"name": entry.get("name"), "type": entry.get("type"), "state": "absent"}]
        )
        return
    probe = dict(entry)
    probe.setdefault("command", "smtpd")  # the command may come from an earlier layer
    if isinstance(probe.get("options"), Mapping):
        probe["options"] = {key: value for key, value in probe["options"].items() if value is not None}
    _normalize_service(where, probe, index)


def _merge_sourced(
    instance: str, layers: list[Layer], check: Any, key_of: Any, merge_entry: Any
) -> list[tuple[dict[str, Any], str]]:
    """Merge named layers by key; return (merged entry, where it was introduced) in first-seen order."""
    merged: dict[Any, tuple[dict[str, Any], str] | None] = {}
    for source, layer in layers:
        if layer is None:
            continue
        where = _Where(f"postfix_instances: {source}", instance)
        if not _is_list(layer):
            raise where.error(f"must be a list, got {_type_name(layer)}")
        for index, entry in enumerate(layer):
            here = _Where(f"postfix_instances: {source}[{index}]", instance)
            check(here, entry, index)
            key = key_of(here, entry, 0, index)
            if entry.get("state", "present") == "absent":
                merged[key[0]] = None
                continue
            current = merged.get(key[0])
            try:
                value = merge_entry(current[0] if current else {}, entry)
            except ValueError as exc:
                raise here.at(key[1]).error(str(exc)) from None
            merged[key[0]] = (value, current[1] if current else f"{source}[{index}]")
    return [item for item in merged.values() if item is not None]


def _dependent_profiles(value: Any) -> list[tuple[str, Mapping[str, Any]]]:
    """postfix__dependent_profiles: one mapping, or a list of mappings (one per exporting role)."""
    name = "postfix__dependent_profiles"
    where = _Where(f"postfix_instances: {name}")
    if value is None:
        return []
    if isinstance(value, Mapping):
        return [(name, value)]
    if not _is_list(value):
        raise where.error(
            "must be a mapping (profile name -> {maincf, mastercf}) or a list of them (one per "
            f"exporting role), got {_type_name(value)}"
        )
    result = []
    for pos, item in enumerate(value):
        if item is None:
            continue
        if not isinstance(item, Mapping):
            raise _Where(f"postfix_instances: {name}[{pos}]").error(
                f"must be a mapping (profile name -> {{maincf, mastercf}}), got {_type_name(item)}"
            )
        result.append((f"{name}[{pos}]", item))
    return result


def _profile_layers(
    field: str,
    profile: str | None,
    profiles: list[tuple[str, Mapping[str, Any]]],
    dependent: list[tuple[str, Mapping[str, Any]]],
) -> list[Layer]:
    if profile is None:
        return []
    layers: list[Layer] = []
    for source, mapping in [*profiles[-1:], *dependent]:
        data = mapping.get(profile)
        if data is None:
            continue
        if not isinstance(data, Mapping):
            raise _Where(f"postfix_instances: {source}.{profile}").error(
                f"a profile must be a mapping with maincf and mastercf, got {_type_name(data)}"
            )
        layers.append((f"{source}.{profile}.{field}", data.get(field)))
    return layers


def _merge_instance_layers(inputs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Merge the instance layers by name: keys last-wins (with their source), lists collected."""
    instances: dict[str, dict[str, Any]] = {}
    for var in INSTANCE_LAYERS:
        layer = inputs.get(var)
        if layer is None:
            continue
        if not _is_list(layer):
            where = _Where(f"postfix_instances: {var}")
            raise where.error(f"must be a list of instances, got {_type_name(layer)}")
        for index, entry in enumerate(layer):
            source = f"{var}[{index}]"
            where = _Where(f"postfix_instances: {source}")
            if not isinstance(entry, Mapping):
                raise where.error(f"an instance must be a mapping, got {entry!r}")
            name = _check_instance_name(where, entry.get("name"))
            here = _Where(where.filter_name, name)
            unknown = sorted(str(key) for key in entry if key not in INSTANCE_FIELDS)
            if unknown:
                expected = ", ".join(INSTANCE_FIELDS)
                raise here.error(f"unknown field(s) {', '.join(unknown)}; expected {expected}")
            state = _check_state(here, entry.get("state", "present"))
            for field in INSTANCE_LIST_FIELDS:
                if entry.get(field) is not None and not _is_list(entry[field]):
                    raise here.error(f"{field} must be a list, got {_type_name(entry[field])}")
            known = instances.get(name)
            if state == "absent" or known is None or known["state"] == "absent":
                known = instances[name] = {"name": name, "keys": {}, "sources": {}, "defined_in": []}
                known.update({field: [] for field in INSTANCE_LIST_FIELDS})
            known["state"] = state
            known["defined_in"].append(source)
            for field, value in entry.items():
                if field in INSTANCE_LIST_FIELDS:
                    known[field].append((f"{source}.{field}", value))
                elif field not in ("name", "state"):
                    known["keys"][field] = value
                    known["sources"][field] = source
    return list(instances.values())


def _computed_params(
    inputs: Mapping[str, Any], instance: Mapping[str, Any], paths: Mapping[str, str], secondaries: list[str]
) -> list[Param]:
    """The parameters the role sets itself, from the instance's keys (they win over every layer)."""
    keys, name = instance["keys"], instance["name"]
    params: list[Param] = []
    if name == "-":
        params.append({"name": "multi_instance_wrapper", "value": "${command_directory}/postmulti -p --"})
        params.append({"name": "multi_instance_directories", "value": [f"/etc/{n}" for n in secondaries]})
    else:
        params.append({"name": "queue_directory", "value": paths["queue_directory"]})
        params.append({"name": "data_directory", "value": paths["data_directory"]})
        params.append({"name": "syslog_name", "value": name})
        params.append({"name": "multi_instance_name", "value": name})
        group = keys.get("group") or inputs.get("postfix__instance_group")
        params.append({"name": "multi_instance_group", "value": group})
    params.append({"name": "multi_instance_enable", "value": True})
    params.append({"name": "myhostname", "value": paths["myhostname"]})
    for key in ("inet_interfaces", "mynetworks"):
        if keys.get(key) is not None:
            params.append({"name": key, "value": keys[key]})
    if paths["tls_cert_file"]:
        params.append({"name": "smtpd_tls_cert_file", "value": paths["tls_cert_file"]})
        params.append({"name": "smtpd_tls_key_file", "value": paths["tls_key_file"]})
    hops = keys.get("relay_next_hops") or []
    if hops:
        params.append(
            {
                "name": "sender_dependent_default_transport_maps",
                "value": "randmap:{" + ", ".join(f"smtp:{hop}" for hop in hops) + "}",
                "comment": "Next hops: each message goes to a randomly chosen hop (load spreading); "
                "relayhost is never consulted.",
            }
        )
        params.append(
            {
                "name": "smtp_fallback_relay",
                "value": list(hops),
                "comment": "Failover: when the chosen hop does not take the message, the smtp client "
                "tries these in order.",
            }
        )
    return params


def _check_instance_keys(instance: Mapping[str, Any]) -> None:
    keys, sources, name = instance["keys"], instance["sources"], instance["name"]

    def fail(key: str, message: str) -> None:
        raise _Where(f"postfix_instances: {sources[key]}", name).error(f"{key} {message}")

    for key in ("profile", "group", "myhostname", "tls_cert_file", "tls_key_file"):
        if key in keys and keys[key] is not None and not isinstance(keys[key], str):
            fail(key, f"must be a string, got {_type_name(keys[key])} {keys[key]!r}")
    for key in ("mynetworks", "relay_next_hops"):
        if keys.get(key) is not None and not _is_list(keys[key]):
            fail(key, f"must be a list, got {_type_name(keys[key])} {keys[key]!r}")
    port = keys.get("port")
    if port is not None and not (
        not isinstance(port, bool) and str(port).isascii() and str(port).isdigit() and 0 < int(port) < 65536
    ):
        fail("port", f"must be a port number (1-65535), got {port!r}")
    if port is None and keys.get("profile") == "loopback_unchecked" and instance.get("state") != "absent":
        fail(
            "profile",
            "is loopback_unchecked, which needs the instance's port (its smtp listener on loopback; "
            "mailstack's back-end gets it from mailman_core__smtp_port)",
        )
    if (keys.get("tls_cert_file") is None) != (keys.get("tls_key_file") is None):
        fail(
            "tls_cert_file" if "tls_cert_file" in keys else "tls_key_file",
            "needs its partner: give both tls_cert_file and tls_key_file, or neither",
        )


def _assemble(
    inputs: Mapping[str, Any],
    instance: dict[str, Any],
    profiles: list[tuple[str, Mapping[str, Any]]],
    dependent: list[tuple[str, Mapping[str, Any]]],
    secondaries: list[str],
) -> dict[str, Any]:
    name, keys = instance["name"], instance["keys"]
    primary = name == "-"
    config_directory = "/etc/postfix" if primary else f"/etc/{name}"
    self_signed = bool(inputs.get("postfix__tls_self_signed")) and keys.get("tls_cert_file") is None
    cert, key = keys.get("tls_cert_file") or "", keys.get("tls_key_file") or ""
    if self_signed:
        cert, key = f"{config_directory}/selfsigned-cert.pem", f"{config_directory}/selfsigned-key.pem"
    paths = {
        "queue_directory": "/var/spool/postfix" if primary else f"/var/spool/{name}",
        "data_directory": "/var/lib/postfix" if primary else f"/var/lib/{name}",
        "myhostname": keys.get("myhostname") or inputs.get("postfix__myhostname"),
        "tls_cert_file": cert,
        "tls_key_file": key,
    }
    out: dict[str, Any] = {
        "name": name,
        "state": instance["state"],
        "profile": keys.get("profile"),
        "config_directory": config_directory,
        **paths,
        "staging": f"{inputs.get('postfix__staging_dir')}/{config_directory.rsplit('/', 1)[-1]}",
        "unit": f"postfix@{name}",
        "self_signed": self_signed,
        "defined_in": instance["defined_in"],
    }
    if instance["state"] == "absent":
        # What the role destroys: configuration, queue, data and staging directories.
        removed = [config_directory, paths["queue_directory"], paths["data_directory"], out["staging"]]
        empty = {"inet_interfaces": "all", "maincf": [], "services": [], "main_cf": "", "master_cf": ""}
        return {**out, "paths": removed, **empty}
    # What the role creates: the staging directory; a secondary's own directories (the package
    # makes the primary's).
    out["directories"] = [{"path": out["staging"], "owner": "root", "mode": "0700"}]
    if not primary:
        out["directories"] += [
            {"path": config_directory, "owner": "root", "mode": "0755"},
            {"path": paths["queue_directory"], "owner": "root", "mode": "0755"},
            {"path": paths["data_directory"], "owner": "postfix", "mode": "0700"},
        ]
    profile = keys.get("profile")
    computed = _computed_params(inputs, instance, paths, secondaries)
    own_maincf = instance["maincf"]
    maincf_layers: list[Layer] = [
        ("postfix__maincf", inputs.get("postfix__maincf")),
        *_profile_layers("maincf", profile, profiles, dependent),
        # The computed parameters are written after the profile's (their place in main.cf) and
        # merged again last: nothing in a layer overrides them (set the instance's keys instead).
        (COMPUTED, computed),
        *own_maincf,
        (COMPUTED, computed),
    ]
    mastercf_layers: list[Layer] = [
        ("__postfix_base_mastercf", inputs.get("__postfix_base_mastercf")),
        ("postfix__mastercf", inputs.get("postfix__mastercf")),
        *_profile_layers("mastercf", profile, profiles, dependent),
        *instance["mastercf"],
    ]
    params = []
    for entry, source in _merge_sourced(name, maincf_layers, _source_check_param, _param_key, _merge_param):
        params.append(_normalize_param(_Where(f"postfix_instances: {source}", name), entry, 0))
    services = []
    merged = _merge_sourced(name, mastercf_layers, _source_check_service, _service_key, _merge_service)
    for entry, source in merged:
        services.append(_normalize_service(_Where(f"postfix_instances: {source}", name), entry, 0))
    port = keys.get("port")
    if port is not None:
        for service in services:
            if service["name"] == "smtp" and service["type"] == "inet":
                service["name"] = str(port)
    interfaces = next((p["value"] for p in params if p["name"] == "inet_interfaces"), "all")
    return {
        **out,
        "inet_interfaces": interfaces,
        "maincf": params,
        "services": services,
        "main_cf": postfix_main_cf(params, name),
        "master_cf": postfix_master_cf(services, name),
    }


def postfix_instances(inputs: Any) -> list[dict[str, Any]]:
    """Every instance of a host, ready to render, from the postfix role's variables.

    See postfix_instances.yml (ansible-doc -t filter postfix_instances) and docs/postfix-data-model.md.
    """
    where = _Where("postfix_instances")
    if not isinstance(inputs, Mapping):
        raise where.error(
            f"input must be a mapping of the postfix role's variables, got {_type_name(inputs)}"
        )
    unknown = sorted(str(key) for key in inputs if key not in ASSEMBLY_INPUTS)
    if unknown:
        raise where.error(f"unknown input(s) {', '.join(unknown)}; expected {', '.join(ASSEMBLY_INPUTS)}")
    profiles: list[tuple[str, Mapping[str, Any]]] = []
    for var in ("postfix__profiles", "postfix__custom_profiles"):
        value = inputs.get(var) or {}
        if not isinstance(value, Mapping):
            raise _Where(f"postfix_instances: {var}").error(
                f"must be a mapping (profile name -> {{maincf, mastercf}}), got {_type_name(value)}"
            )
        profiles.append((var, value))
    known_profiles = {**profiles[0][1], **profiles[1][1]}
    # Which variable defines each profile (postfix__custom_profiles replaces a role profile whole).
    by_profile = {p: [profiles[1] if p in profiles[1][1] else profiles[0]] for p in known_profiles}
    dependent = _dependent_profiles(inputs.get("postfix__dependent_profiles"))
    merged = _merge_instance_layers(inputs)
    present = [i for i in merged if i["state"] == "present"]
    for instance in present:
        _check_instance_keys(instance)
        profile = instance["keys"].get("profile")
        if profile is not None and profile not in known_profiles:
            raise _Where(f"postfix_instances: {instance['sources']['profile']}", instance["name"]).error(
                f"profile {profile!r} is not defined; known profiles (postfix__profiles, "
                f"postfix__custom_profiles): {', '.join(sorted(known_profiles))}"
            )
    if not any(i["name"] == "-" for i in present):
        raise where.error(
            f"the primary instance '-' must be present in {', '.join(INSTANCE_LAYERS)} (it runs the others); "
            "remove secondary instances with state: absent, never the primary"
        )
    secondaries = [i["name"] for i in present if i["name"] != "-"]
    result = [
        _assemble(inputs, i, by_profile.get(i["keys"].get("profile"), []), dependent, secondaries)
        for i in merged
    ]
    try:
        postfix_check_instances(result)
    except AnsibleFilterError as exc:
        defined = "; ".join(f"{i['name']!r}: {', '.join(i['defined_in'])}" for i in result)
        raise AnsibleFilterError(f"postfix_instances: {exc} (instances defined in {defined})") from None
    return result


# --------------------------------------------------------------------------------------------
# Checks


def postfix_check_services(services: Any, instance: str = "-") -> Any:
    """Check an instance's services; return them unchanged or raise AnsibleFilterError."""
    where = _Where("postfix_check_services", instance)
    _check_instance_name(where, instance)
    _normalize_services(where, services)
    return services


def _inet_endpoint(name: str) -> tuple[str, str] | None:
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


def _interfaces(where: _Where, instance: Mapping[str, Any]) -> list[str]:
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
    where = _Where("postfix_check_instances")
    if isinstance(instances, str | Mapping) or not isinstance(instances, Sequence):
        raise where.error(f"instances must be a list of instance mappings, got {_type_name(instances)}")
    listeners: list[tuple[str, str, str, str]] = []  # (host, port, instance, service label)
    names: set[str] = set()
    for index, instance in enumerate(instances):
        if not isinstance(instance, Mapping):
            raise where.error(f"item {index}: an instance must be a mapping, got {instance!r}")
        name = _check_instance_name(where, instance.get("name"))
        here = _Where(where.filter_name, name)
        if name in names:
            raise here.error("instance is defined twice; instance names must be unique")
        names.add(name)
        if instance.get("state", "present") == "absent":
            continue
        services = instance.get("services", instance.get("mastercf"))
        for service in _normalize_services(here, services):
            if service["type"] != "inet":
                continue
            label = f"{service['name']}/inet"
            host, port = _inet_endpoint(service["name"]) or ("*", service["name"])
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


# --------------------------------------------------------------------------------------------
# Rendering


def _brace(text: str) -> str:
    """A command argument as master.cf needs it: { ... } when it has a blank or starts with '{'."""
    return f"{{ {text} }}" if any(char in SPACE for char in text) or text.startswith("{") else text


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
            text = _option_text(value)
            if any(char in SPACE for char in text) or text.startswith("{"):
                lines.append(f"{MASTER_INDENT}-o {{ {key} = {text} }}")
            else:
                lines.append(f"{MASTER_INDENT}-o {key}={text}")
        if service["args"]:
            lines.append(MASTER_INDENT + " ".join(_brace(arg) for arg in service["args"]))
        out.append("\n".join(lines) + "\n")
    return "".join(out)


def postfix_master_cf(services: Any, instance: str = "-") -> str:
    """Render master.cf (body, without the ansible_managed header) from a list of services."""
    where = _Where("postfix_master_cf", instance)
    _check_instance_name(where, instance)
    return _render_master(_normalize_services(where, services))


def postfix_main_cf(params: Any, instance: str = "-") -> str:
    """Render main.cf (body, without the ansible_managed header) from a list of parameters."""
    where = _Where("postfix_main_cf", instance)
    _check_instance_name(where, instance)
    out: list[str] = []
    for param in _normalize_params(where, params):
        lines = []
        if param["comment"]:
            if out:
                lines.append("")
            lines.extend(_comment_lines(param["comment"]))
        value = param["value"]
        single = f"{param['name']} = {_main_value_text(value)}".rstrip(" ")
        items = [_main_value_text(item) for item in value] if isinstance(value, list) else []
        # One item per continuation line, unless an item starts with '#' (that line would be a comment).
        if len(items) > 1 and len(single) > MAIN_LIST_WIDTH and not any(i.startswith("#") for i in items):
            lines.append(f"{param['name']} =")
            lines.extend(f"{MAIN_INDENT}{item}," for item in items[:-1])
            lines.append(f"{MAIN_INDENT}{items[-1]}")
        else:
            lines.append(single)
        out.append("\n".join(lines) + "\n")
    return "".join(out)


# --------------------------------------------------------------------------------------------
# Parsing


def _logical_lines(text: str) -> Iterable[tuple[list[str], str]]:
    """Postfix's readlline: yield (comment lines just before the entry, logical line).

    Lines end at "\n" only; a line whose first character is ASCII whitespace continues the entry;
    comment and blank lines inside an entry do not end it.
    """
    comments: list[str] = []
    current: str | None = None
    current_comments: list[str] = []
    for raw in text.split("\n"):
        stripped = raw.strip(ISSPACE)
        if not stripped:
            comments = []
            continue
        if stripped.startswith("#"):
            comments.append(stripped[1:].removeprefix(" "))
            continue
        if raw[0] in ISSPACE:
            if current is None:
                raise AnsibleFilterError(
                    f"postfix_parse_master_cf: continuation line without an entry before it: {raw!r}"
                )
            current += " " + stripped
            comments = []
            continue
        if current is not None:
            yield current_comments, current
        current, current_comments, comments = stripped, comments, []
    if current is not None:
        yield current_comments, current


def _tokens(line: str) -> list[str]:
    """The fields of a master.cf entry: split at blanks outside braces, like Postfix's mystrtokq()."""
    return _words(line, SPACE)


def _unbrace(token: str) -> str:
    """extpar(): a token that starts with '{' is one {...} group; its inside, trimmed."""
    if not token.startswith("{"):
        return token
    if _group_end(token, 0) != len(token):
        raise _SyntaxProblem(f"a field that starts with '{{' must be one {{...}} group, got {token!r}")
    return token[1:-1].strip(ISSPACE)


def _parsed_value(text: str) -> Any:
    return [] if text == "" else text


def postfix_parse_master_cf(text: str, keep_comments: bool = False) -> list[Service]:
    """Parse master.cf text into canonical services (inverse of postfix_master_cf)."""
    where = _Where("postfix_parse_master_cf")
    if not isinstance(text, str):
        raise where.error(f"input must be the text of a master.cf file, got {_type_name(text)}")
    if "\x00" in text:
        raise where.error("input must not contain NUL characters (Postfix would stop reading the line there)")
    try:
        raw = _parse_entries(where, text, keep_comments)
    except _SyntaxProblem as problem:
        raise where.error(str(problem)) from None
    return _normalize_services(where, raw)


def _parse_entries(where: _Where, text: str, keep_comments: bool) -> list[dict[str, Any]]:
    raw: list[dict[str, Any]] = []
    for comments, line in _logical_lines(text):
        tokens = _tokens(line)
        if len(tokens) < 8:
            raise where.error(
                f"an entry needs 8 fields (service type private unpriv chroot wakeup maxproc "
                f"command), got {len(tokens)} in {line!r}"
            )
        name, stype, private, unpriv, chroot, wakeup, maxproc, command = tokens[:8]
        rest = tokens[8:]
        options: dict[str, Any] = {}
        pos = 0
        while pos < len(rest) and rest[pos].startswith("-"):
            if rest[pos] == "-o" and pos + 1 < len(rest):
                setting = _unbrace(rest[pos + 1])
                if "=" not in setting:
                    raise where.at(f"service '{name}/{stype}'").error(
                        f"override must be name=value, got {rest[pos + 1]!r}"
                    )
                key, value = setting.split("=", 1)
                options[key.strip(ISSPACE)] = _parsed_value(value.strip(ISSPACE))
                pos += 2
                continue
            break
        args = [_unbrace(token) for token in rest[pos:]]
        entry: dict[str, Any] = {
            "name": name,
            "type": stype,
            "private": private,
            "unpriv": unpriv,
            "chroot": chroot,
            "wakeup": wakeup,
            "maxproc": maxproc,
            "command": command,
            "args": args,
            "options": options,
        }
        if keep_comments and comments:
            entry["comment"] = "\n".join(comments)
        raw.append(entry)
    return raw


# --------------------------------------------------------------------------------------------


class FilterModule:
    """Postfix configuration filters."""

    def filters(self) -> dict[str, Any]:
        return {
            "postfix_merge_services": postfix_merge_services,
            "postfix_merge_params": postfix_merge_params,
            "postfix_instances": postfix_instances,
            "postfix_check_services": postfix_check_services,
            "postfix_check_instances": postfix_check_instances,
            "postfix_master_cf": postfix_master_cf,
            "postfix_main_cf": postfix_main_cf,
            "postfix_parse_master_cf": postfix_parse_master_cf,
        }
