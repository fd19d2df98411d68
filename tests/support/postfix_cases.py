"""Generated and hand-written Postfix services and parameters that the unit and oracle tests share.

Every name the strategies draw is something real Postfix accepts: option and parameter names are real
Postfix parameters (postconf warns about unknown ones), so the oracle tests can send the same data
through the real postconf.
"""

from __future__ import annotations

import operator
import re
from typing import Any

from hypothesis import strategies as st

# Real Postfix 3.7 parameters (postconf -d), used as -o names and main.cf names. Not myhostname,
# mail_name or queue_directory: the generated values refer to those ($myhostname), and a value
# that refers to its own parameter is a loop Postfix rejects.
REAL_PARAMS = [
    "smtpd_banner",
    "syslog_name",
    "smtpd_tls_security_level",
    "smtpd_sasl_auth_enable",
    "smtpd_recipient_restrictions",
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_milters",
    "content_filter",
    "receive_override_options",
    "smtpd_authorized_xforward_hosts",
    "smtp_helo_timeout",
    "smtp_connect_timeout",
    "milter_macro_daemon_name",
    "smtpd_proxy_filter",
    "smtpd_client_connection_count_limit",
    "smtpd_tls_wrappermode",
    "mynetworks",
    "relayhost",
    "smtpd_data_restrictions",
    "in_flow_delay",
    "maillog_file",
    "notify_classes",
    "smtp_bind_address",
    "default_destination_concurrency_limit",
    "smtpd_upstream_proxy_protocol",
]


def _words(text: str, separators: str) -> list[str]:
    words, depth, current = [], 0, ""
    for char in text:
        depth += {"{": 1, "}": -1}.get(char, 0)
        if depth == 0 and char in separators:
            words.append(current)
            current = ""
        else:
            current += char
    return [*words, current]


def _group_ok(text: str) -> bool:
    """Postfix (postconf 3.7, checked by hand) warns "syntax error after '}'" when a word of a value
    (split at blanks and ',' outside braces; in type:name also the part after the first ':') starts
    with a {...} group and goes on after it."""
    for word in _words(text, " \t,"):
        head = _words(word, ":")[0]
        candidates = [word] if word.startswith("{") else [word[len(head) + 1 :]]
        for candidate in candidates:
            if candidate.startswith("{"):
                depth = 0
                for pos, char in enumerate(candidate):
                    depth += {"{": 1, "}": -1}.get(char, 0)
                    if depth == 0:
                        if pos != len(candidate) - 1:
                            return False
                        break
    return True


_WORD_CHARS = "abcdefghijklmnopqrstuvwxyzABCXYZ0123456789_./:=,-@+%!()#*?[]"
# Postfix expands $name, ${name}, $(name) in main.cf and -o values; '$$' is a literal '$'.
_MACROS = ["$myhostname", "${myhostname}", "$(mail_name)", "$$", "${queue_directory?{$myhostname}:{x y}}"]
word = st.one_of(
    st.text(alphabet=_WORD_CHARS, min_size=1, max_size=10),
    st.tuples(st.text(alphabet=_WORD_CHARS, max_size=4), st.sampled_from(_MACROS)).map("".join),
)
spaced = st.lists(word, min_size=2, max_size=4).map(" ".join)
_group_body = st.one_of(word, spaced)
braced = st.one_of(
    st.tuples(word, _group_body, st.one_of(st.just(""), word)).map(lambda t: f"{t[0]}{{{t[1]}}}{t[2]}"),
    _group_body.map(lambda body: f"{{{body}}}"),
)
# A non-empty value on one line, without leading or trailing whitespace, braces balanced, and
# (Postfix reads a value that starts with '{' as one group) nothing after a leading {...} group.
# No '{' right after a reference: postconf reads the groups of the expanded value, and a reference
# may expand to nothing or end in a blank.
value_text = (
    st.one_of(word, word, spaced, braced)
    .filter(_group_ok)
    .filter(lambda v: not re.search(r"(\$[A-Za-z0-9_]+|[)}])\{", v))
)

flag = st.sampled_from(["y", "n", "-", True, False])
wakeup = st.one_of(st.just("-"), st.integers(0, 100_000), st.integers(0, 100_000).map(lambda n: f"{n}?"))
maxproc = st.one_of(st.just("-"), st.integers(0, 10_000), st.integers(0, 10_000).map(str))
_LOWER = "abcdefghijklmnopqrstuvwxyz"
command = st.builds(
    operator.add, st.sampled_from(_LOWER), st.text(alphabet=_LOWER + "0123456789_.-", max_size=12)
)

option_value = st.one_of(
    value_text,
    st.integers(0, 10**6),
    st.booleans(),
    st.lists(st.one_of(word, spaced, st.integers(0, 99)), min_size=1, max_size=4),
    st.just([]),
)


option_value = option_value.filter(lambda v: _group_ok(option_text(v)))
options = st.dictionaries(st.sampled_from(REAL_PARAMS), option_value, max_size=5)


def _args_ok(args: list[str]) -> bool:
    """Leading '-' arguments are daemon options read letter by letter (getopt); 'o' takes a value."""
    if args and args[0].startswith("#") and " " not in args[0]:
        return False
    for arg in args:
        if arg == "--" or not arg.startswith("-"):
            return True
        if arg == "-" or "o" in arg[1:]:
            return False
    return True


args = st.lists(st.one_of(word, spaced, braced), max_size=5).filter(_args_ok)
comment = st.lists(st.text(alphabet="abc XYZ-#:'", max_size=20), max_size=3).map("\n".join)

_octet = st.integers(0, 255)
ipv4 = st.tuples(_octet, _octet, _octet, _octet).map(lambda t: ".".join(map(str, t)))
port = st.integers(1, 65535).map(str)
inet_name = st.one_of(
    port,
    st.sampled_from(["smtp", "submission", "submissions", "smtps", "lmtp"]),
    st.tuples(ipv4, st.one_of(port, st.just("smtp"))).map(":".join),
    st.sampled_from(["[::1]", "[2001:db8::25]", "localhost", "mx1.example.test"]).flatmap(
        lambda host: port.map(lambda p: f"{host}:{p}")
    ),
)
local_name = st.builds(
    operator.add,
    st.sampled_from(_LOWER + "XYZ0123456789_"),
    st.text(alphabet=_LOWER + "XYZ0123456789._-", max_size=16),
)


@st.composite
def service(draw: st.DrawFn) -> dict[str, Any]:
    stype = draw(st.sampled_from(["inet", "unix", "unix-dgram", "fifo", "pass"]))
    entry: dict[str, Any] = {
        "name": draw(inet_name if stype == "inet" else local_name),
        "type": stype,
        "command": draw(command),
    }
    optional = {
        "private": flag,
        "unpriv": flag,
        "chroot": flag,
        "wakeup": wakeup,
        "maxproc": maxproc,
        "args": args,
        "options": options,
        "comment": comment,
    }
    for field, strategy in optional.items():
        if draw(st.booleans()):
            entry[field] = draw(strategy)
    return entry


services = st.lists(service(), max_size=12, unique_by=lambda s: (s["name"], s["type"]))


def option_text(value: Any) -> str:
    """What Postfix reads for an -o value (independent of the filter's own helper)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(option_text(item) for item in value)
    return str(value)


def expected_canonical(entry: dict[str, Any]) -> dict[str, Any]:
    """What parsing the rendered file must give back for one generated service."""

    def flag_text(value: Any) -> str:
        return {True: "y", False: "n"}.get(value, value) if isinstance(value, bool) else value

    def number(value: Any) -> Any:
        return int(value) if isinstance(value, str) and value.isdigit() else value

    blanks = " \t\n\v\f\r"  # Postfix trims ASCII whitespace only
    comment_text = entry.get("comment", "").rstrip(blanks)
    return {
        "name": entry["name"],
        "type": entry["type"],
        "private": flag_text(entry.get("private", "-")),
        "unpriv": flag_text(entry.get("unpriv", "-")),
        "chroot": flag_text(entry.get("chroot", "-")),
        "wakeup": number(entry.get("wakeup", "-")),
        "maxproc": number(entry.get("maxproc", "-")),
        "command": entry["command"],
        "args": list(entry.get("args", [])),
        "options": {k: option_text(v) or [] for k, v in entry.get("options", {}).items()},
        "comment": (
            "\n".join(line.rstrip(blanks) for line in comment_text.split("\n")) if comment_text else ""
        ),
    }


def svc(**fields: Any) -> dict[str, Any]:
    """A unix service 'foo' running smtpd, with the given fields."""
    return {"name": "foo", "type": "unix", "command": "smtpd", **fields}


# Defect 9 and the over-strict refusals: accepted, and read back as they are.
ACCEPTED_SERVICES = [
    svc(name="u2028", args=["a\u2028b"]),  # 9: str.splitlines() broke the line here
    svc(name="fs", comment="\x1c c"),  # 9
    svc(name="vt", comment="\x0b#"),  # 9
    svc(name="nel", options={"smtpd_banner": "{\x85 }"}),  # 9
    svc(name="dashdash", command="pipe", args=["--", "-o", "x=y"]),  # options end at '--'
    svc(name="hash", command="pipe", args=["# y", "z"]),  # written braced: not a comment
    svc(name="uspace", options={"smtpd_banner": "\u00a0y\u2003"}),  # Postfix trims ASCII only
    svc(name="vcluster", args=["-v", "-D", "x"]),
    svc(name="hostref", options={"smtpd_banner": "$myhostname{0}"}),  # a group that ends the word
    svc(
        name="relational",
        options={"smtpd_banner": "${{$mail_name} == {Postfix} ? {yes} : {no}} ${{1}<{2}?{lt}}"},
    ),
]
ACCEPTED_PARAMS = [
    {"name": "smtpd_banner", "value": "\u2003x\u2003"},
    {"name": "relayhost", "value": "{", "state": "absent"},  # only the name counts
    {"name": "syslog_name", "value": "${myhostname?{a b}:{c}}${ mail_name ? {x} }"},
    {"name": "smtpd_milters", "value": ["{a}", "${relayhost:{inet:127.0.0.1:1}}"]},
]
