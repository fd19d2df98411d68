# Copyright: mailstack contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""NFS exports as data: check ``nfs_server__exports`` and render it for roles/nfs_server.

The filter nfs_exports (plugins/filter/nfs_exports.py) wraps nfs_exports; its documentation is beside it.

An export, as written in the data::

    {path, clients, access, squash, anonuid, anongid, id, owner, group, mode}

The same checked data renders either as lines of an exports(5) file (the kernel server,
nfs-kernel-server) or as nfs-ganesha EXPORT blocks; every export is ``sync``, never checks
subtrees, uses AUTH_SYS and is open only to its ``clients``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from typing import Any

from ansible_collections.mailstack.site.plugins.plugin_utils.errors import Where

BACKENDS = ("kernel", "ganesha")
VERSIONS = (3, 4)
FIELDS = ("path", "clients", "access", "squash", "anonuid", "anongid", "id", "owner", "group", "mode")
ACCESS = ("rw", "ro")
SQUASH = ("root_squash", "all_squash", "no_root_squash")
ID_MAX = 4294967294  # anonuid/anongid: a 32-bit id, not (uid_t)-1
EXPORT_ID_MAX = 65535  # ganesha's Export_Id is 16 bits; 0 is the NFSv4 pseudo root
# A path both exports(5) and ganesha's parser take without quoting rules: no blanks, quotes,
# backslashes or '#'; absolute, normalized, not the root directory.
_PATH = re.compile(r"(/[A-Za-z0-9._+-]+)+")
_NAME = re.compile(r"[a-z_][a-z0-9_-]{0,31}")
_MODE = re.compile(r"0?[0-7]{3}")


def _error(where: str, message: str) -> Exception:
    return Where("nfs_exports", where).error(message)


def _path(value: Any, where: str) -> str:
    if not isinstance(value, str) or not _PATH.fullmatch(value):
        raise _error(
            where,
            f"must be an absolute path of letters, digits and '._+-' (no blank, no final '/'), got {value!r}",
        )
    if any(part in (".", "..") for part in value.split("/")):
        raise _error(where, f"must be a normalized path (no '.' or '..'), got {value!r}")
    return value


def _clients(value: Any, where: str) -> list[str]:
    if not isinstance(value, Sequence) or isinstance(value, str | bytes):
        raise _error(where, f"must be a list of IPv4/IPv6 addresses or networks, got {value!r}")
    if not value:
        raise _error(where, "is empty: an export open to no client (name the clients; no 'everyone')")
    result: list[str] = []
    for index, client in enumerate(value):
        spot = f"{where}[{index}]"
        if not isinstance(client, str):
            raise _error(spot, f"must be an IPv4/IPv6 address or network, got {client!r}")
        try:
            network = ipaddress.ip_network(client.strip(), strict=True)
        except ValueError as exc:
            raise _error(
                spot, f"must be an IPv4/IPv6 address or network (no host bits), got {client!r}: {exc}"
            ) from None
        # A single address is written bare, a network with its prefix length.
        text = str(network.network_address) if network.num_addresses == 1 else str(network)
        if text in result:
            raise _error(spot, f"{text} is listed twice")
        result.append(text)
    return result


def _choice(value: Any, choices: Sequence[str], where: str) -> str:
    if value not in choices:
        raise _error(where, f"must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _int(value: Any, low: int, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _error(where, f"must be an integer from {low} to {high}, got {value!r}")
    return value


def _owner(value: Any, where: str) -> None:
    if isinstance(value, int) and not isinstance(value, bool):
        _int(value, 0, ID_MAX, where)
    elif not isinstance(value, str) or not _NAME.fullmatch(value):
        raise _error(where, f"must be a user/group name or a numeric id, got {value!r}")


def _check(exports: Any, name: str) -> list[dict[str, Any]]:
    if not isinstance(exports, Sequence) or isinstance(exports, str | bytes):
        raise _error(name, f"must be a list of exports, got {type(exports).__name__}")
    checked: list[dict[str, Any]] = []
    paths: set[str] = set()
    ids: set[int] = set()
    for index, export in enumerate(exports):
        where = f"{name}[{index}]"
        if not isinstance(export, Mapping):
            raise _error(where, f"must be a mapping, got {export!r}")
        unknown = sorted(set(export) - set(FIELDS))
        if unknown:
            raise _error(f"{where}.{unknown[0]}", f"unknown field (known: {', '.join(FIELDS)})")
        for field in ("path", "clients"):
            if field not in export:
                raise _error(f"{where}.{field}", "is required")
        path = _path(export["path"], f"{where}.path")
        if path in paths:
            raise _error(f"{where}.path", f"{path} is exported twice")
        paths.add(path)
        entry: dict[str, Any] = {
            "path": path,
            "clients": _clients(export["clients"], f"{where}.clients"),
            "access": _choice(export.get("access", "rw"), ACCESS, f"{where}.access"),
            "squash": _choice(export.get("squash", "root_squash"), SQUASH, f"{where}.squash"),
        }
        for field in ("anonuid", "anongid"):
            if export.get(field) is not None:
                entry[field] = _int(export[field], 0, ID_MAX, f"{where}.{field}")
        export_id = _int(export.get("id", index + 1), 1, EXPORT_ID_MAX, f"{where}.id")
        if export_id in ids:
            raise _error(f"{where}.id", f"{export_id} is used by another export")
        ids.add(export_id)
        entry["id"] = export_id
        for field in ("owner", "group"):
            if export.get(field) is not None:
                _owner(export[field], f"{where}.{field}")
        mode = export.get("mode")
        if mode is not None and (not isinstance(mode, str) or not _MODE.fullmatch(mode)):
            raise _error(f"{where}.mode", f"must be an octal mode as a string ('0755'), got {mode!r}")
        checked.append(entry)
    return checked


def _kernel(exports: list[dict[str, Any]]) -> str:
    lines = []
    for export in exports:
        options = [export["access"], "sync", export["squash"], "no_subtree_check", "sec=sys"]
        options += [f"{field}={export[field]}" for field in ("anonuid", "anongid") if field in export]
        opts = ",".join(options)
        lines.append(" ".join([export["path"], *(f"{client}({opts})" for client in export["clients"])]))
    return "".join(f"{line}\n" for line in lines)


def _ganesha(exports: list[dict[str, Any]], versions: list[int]) -> str:
    blocks = []
    for export in exports:
        lines = [
            "EXPORT {",
            f"    Export_Id = {export['id']};",
            f'    Path = "{export["path"]}";',
            f'    Pseudo = "{export["path"]}";',
            f"    Protocols = {', '.join(str(v) for v in versions)};",
            "    Transports = TCP;",
            # Nobody but the CLIENT block below: the export level denies everything.
            "    Access_Type = None;",
            f"    Squash = {export['squash']};",
            "    SecType = sys;",
        ]
        if "anonuid" in export:
            lines.append(f"    Anonymous_Uid = {export['anonuid']};")
        if "anongid" in export:
            lines.append(f"    Anonymous_Gid = {export['anongid']};")
        lines += [
            "    FSAL {",
            "        Name = VFS;",
            "    }",
            "    CLIENT {",
            f"        Clients = {', '.join(export['clients'])};",
            f"        Access_Type = {export['access'].upper()};",
            "    }",
            "}",
        ]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def nfs_exports(
    exports: Any, backend: str = "kernel", versions: Any = (4,), name: str = "nfs_server__exports"
) -> str:
    """Check the exports and render them for one back-end (exports(5) lines or ganesha EXPORT blocks)."""
    if backend not in BACKENDS:
        raise _error("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if (
        not isinstance(versions, Sequence)
        or isinstance(versions, str | bytes)
        or not versions
        or any(isinstance(v, bool) or v not in VERSIONS for v in versions)
    ):
        choices = ", ".join(map(str, VERSIONS))
        raise _error("versions", f"must be a non-empty list of {choices}, got {versions!r}")
    checked = _check(exports, name)
    if backend == "kernel":
        return _kernel(checked)
    return _ganesha(checked, sorted(set(versions)))
