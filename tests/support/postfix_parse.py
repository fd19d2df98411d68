"""Parse master.cf text into canonical services: the inverse of postfix_render.render_master_cf.

Only the tests and the benchmarks read master.cf files (Debian's stock file, what postconf -M
prints); the roles never parse, they render.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ansible.errors import AnsibleFilterError
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_model import (
    PostfixWhere,
    Service,
    normalize_services,
    type_name,
)
from ansible_collections.mailstack.site.plugins.plugin_utils.postfix_syntax import (
    ISSPACE,
    SPACE,
    SyntaxProblem,
    group_end,
    words,
)


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
    return words(line, SPACE)


def _unbrace(token: str) -> str:
    """extpar(): a token that starts with '{' is one {...} group; its inside, trimmed."""
    if not token.startswith("{"):
        return token
    if group_end(token, 0) != len(token):
        raise SyntaxProblem(f"a field that starts with '{{' must be one {{...}} group, got {token!r}")
    return token[1:-1].strip(ISSPACE)


def _parsed_value(text: str) -> Any:
    return [] if text == "" else text


def postfix_parse_master_cf(text: str, keep_comments: bool = False) -> list[Service]:
    """Parse master.cf text into canonical services (inverse of postfix_master_cf)."""
    where = PostfixWhere("postfix_parse_master_cf")
    if not isinstance(text, str):
        raise where.error(f"input must be the text of a master.cf file, got {type_name(text)}")
    if "\x00" in text:
        raise where.error("input must not contain NUL characters (Postfix would stop reading the line there)")
    try:
        raw = _parse_entries(where, text, keep_comments)
    except SyntaxProblem as problem:
        raise where.error(str(problem)) from None
    return normalize_services(where, raw)


def _parse_entries(where: PostfixWhere, text: str, keep_comments: bool) -> list[dict[str, Any]]:
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
