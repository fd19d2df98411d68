# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Postfix's syntax: one definition of a word, a {...} group, a value and a macro expression.

Used by the field checks (postfix_model) and by the tests' master.cf parser. Taken from postconf(5),
master(5) and the Postfix 3.7 sources they describe (mac_parse.c, mac_expand.c, mystrtok.c,
balpar.c, extpar.c, readlline.c, postconf_dbms.c, postconf_master.c).
"""

from __future__ import annotations

import re
from typing import Any

_NAME_RUN = re.compile(r"[A-Za-z0-9_]+")  # a parameter name after '$' (Postfix's ISALNUM is ASCII only)
# Control characters (a tab too: postconf shows it as a space) and lone surrogates, which cannot be
# written as UTF-8.
_BAD_CHAR = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
SPACE = " \t\r\n"  # Postfix's CHARS_SPACE: what separates words of a value and fields of master.cf
ISSPACE = " \t\n\v\f\r"  # Postfix's ISSPACE() (ASCII only): what it trims and what continues a line
RELATIONAL_OPERATORS = ("==", "!=", "<", "<=", ">=", ">")
MAX_MACRO_NESTING = 20  # Postfix gives up at 100 nested macro calls; nobody needs 20
MAX_BRACE_NESTING = 20


def brace(text: str) -> str:
    """A command argument as master.cf needs it: { ... } when it has a blank or starts with '{'."""
    return f"{{ {text} }}" if any(char in SPACE for char in text) or text.startswith("{") else text


class SyntaxProblem(Exception):
    """What Postfix would reject or misread in a value; the message completes 'field: ...'."""


def space_at(text: str, pos: int) -> int:
    """The position after a run of Postfix separators (CHARS_SPACE) from pos."""
    while pos < len(text) and text[pos] in SPACE:
        pos += 1
    return pos


def group_end(text: str, pos: int) -> int:
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


def words(text: str, separators: str = SPACE + ",") -> list[str]:
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


def braces_balanced(text: str) -> bool:
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
    (not those only tested, as in ${name?text}) to ``names``; raises SyntaxProblem.
    """
    names = set() if names is None else names
    if depth > MAX_MACRO_NESTING:
        raise SyntaxProblem(f"macro expressions are nested more than {MAX_MACRO_NESTING} deep, got {text!r}")
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
                raise SyntaxProblem(f"macro reference at {text[pos:]!r} is not closed or has no name")
            results += _macro_expression(body, depth + 1, names)
        else:
            end = _name_end(text, pos + 1)
            names.add(text[pos + 1 : end])
            if end == pos + 1:
                raise SyntaxProblem(
                    "'$' must start a parameter reference ($name, ${name}, $(name)) or be doubled ('$$' "
                    f"is a literal '$'), got {text!r}"
                )
        spans.append((pos, end))
        pos = end
    return spans, results


def _curly_operand(body: str, pos: int) -> tuple[str, int] | None:
    """A {text} operand after optional separators: (text, position after it and the separators after it)."""
    start = space_at(body, pos)
    if start >= len(body) or body[start] != "{":
        return None
    end = group_end(body, start)
    if end < 0:
        raise SyntaxProblem(f"unbalanced {{}} in macro expression {body!r}")
    return body[start + 1 : end - 1], space_at(body, end)


def _macro_expression(body: str, depth: int, names: set[str]) -> list[str]:
    """The inside of ${...} or $(...): name, name?text, name:text, name?{a}:{b}, {a}==... forms."""
    left = _curly_operand(body, 0)
    if left is not None:  # relational expression: ${{a} == {b} ? {c} : {d}}
        operand, pos = left
        op_end = pos
        while op_end < len(body) and body[op_end] in "<>!=?+-*/~&|%":
            op_end += 1
        if body[pos:op_end] not in RELATIONAL_OPERATORS:
            raise SyntaxProblem(
                f"a relational macro expression needs one of {', '.join(RELATIONAL_OPERATORS)} after "
                f"{{{operand}}}, got {body!r}"
            )
        right = _curly_operand(body, op_end) if body[op_end : op_end + 1] in ("{", *SPACE) else None
        if right is None:
            raise SyntaxProblem(
                f"a relational macro expression needs a {{text}} operand on the right, got {body!r}"
            )
        _macro_scan(operand, depth + 1, names)
        _macro_scan(right[0], depth + 1, names)
        pos = right[1]
        if pos == len(body):
            return []
        if body[pos] not in "?:":
            raise SyntaxProblem(f"'?' or ':' must follow a relational macro expression, got {body!r}")
    else:
        start = space_at(body, 0)
        end = _name_end(body, start)
        pos = space_at(body, end)
        if end == start:
            raise SyntaxProblem(f"macro reference at {body!r} has no parameter name")
        if pos == len(body):
            names.add(body[start:end])
            return []
        if body[pos] not in "?:":
            raise SyntaxProblem(
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
            raise SyntaxProblem(f"':' or the end must follow {{{text}}} in a macro expression, got {body!r}")
    operand = _curly_operand(body, pos + 1)
    text, pos = operand if operand else (body[pos + 1 :], len(body))
    results += [text, *_macro_scan(text, depth + 1, names)[1]]
    if pos != len(body):
        raise SyntaxProblem(f"unexpected text after {{{text}}} in a macro expression, got {body!r}")
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
    for word in words(text):
        inside = word
        if not word.startswith("{"):
            head, sep, inside = word.partition(":")
            while sep and head == "proxy":
                head, sep, inside = inside.partition(":")
            if not inside.startswith("{"):
                continue
        end = group_end(inside, 0)
        if end != len(inside) or _group_problem(inside[1:-1], depth + 1):
            return True
    return False


def _value_problem(text: str, own_name: str | None = None) -> str | None:
    """What Postfix would reject or misread in a main.cf or -o value of parameter own_name, or None."""
    names: set[str] = set()
    try:
        spans, results = _macro_scan(text, names=names)
    except SyntaxProblem as problem:
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


def check_value(where: Any, field: str, text: str, own_name: str | None = None) -> None:
    problem = _value_problem(text, own_name)
    if problem:
        raise where.error(f"{field}: {problem}")


def check_text(where: Any, field: str, text: str) -> None:
    """Characters: one line, no control character (a tab is a blank), valid Unicode."""
    if "\n" in text or "\r" in text:
        raise where.error(f"{field} must be on one line (no newline), got {text!r}")
    bad = _BAD_CHAR.search(text)
    if bad:
        raise where.error(
            f"{field} must not contain control characters or unpaired surrogates, got {bad.group()!r} "
            f"in {text!r}"
        )
