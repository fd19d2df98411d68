#!/usr/bin/python3
"""nfs-check-exports BACKEND FILE: the host-side check of a candidate exports file.

The `validate:` of roles/nfs_server's exports file (and the check its handler runs before a
reload). The nfs_exports filter has already checked the data; this checks what only the host
knows, so the live server is never asked to load an export it would refuse or serve wrongly:
  - every exported path is an existing directory (not a symlink);
  - no path is exported twice (and, for ganesha, no Export_Id or Pseudo path is used twice);
  - ganesha: no path lies on an overlay file system (the VFS FSAL cannot make file handles there:
    every operation fails with "Operation not supported"; in a container, export a volume);
  - ganesha: the braces of the file balance.
Exit status 0: accepted; 1: refused (the reasons on stderr); 2: usage.
"""

from __future__ import annotations

import os
import re
import sys


def mount_fstype(path: str) -> str:
    """The file system type of the mount that holds PATH (longest mount point prefix)."""
    best, fstype = "", ""
    with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
        for line in mountinfo:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            kind = fields[fields.index("-") + 1]
            inside = path == point or path.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, fstype = point, kind
    return fstype


def kernel_paths(text: str) -> list[str]:
    lines = [line.strip() for line in text.splitlines()]
    return [line.split()[0] for line in lines if line and not line.startswith("#")]


def ganesha_exports(text: str, problems: list[str]) -> list[dict[str, str]]:
    body = "\n".join(line.split("#", 1)[0] for line in text.splitlines())
    if body.count("{") != body.count("}"):
        problems.append("unbalanced braces")
    exports = []
    for block in re.findall(r"\bEXPORT\s*\{(.*?)\n\}", body, flags=re.S | re.I):
        pattern = r"^\s*(Export_Id|Path|Pseudo)\s*=\s*\"?([^\";]*)\"?\s*;"
        fields = dict(re.findall(pattern, block, flags=re.M | re.I))
        fields = {key.lower(): value for key, value in fields.items()}
        for key in ("export_id", "path", "pseudo"):
            if key not in fields:
                problems.append(f"an EXPORT block has no {key}")
        exports.append(fields)
    return exports


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in ("kernel", "ganesha"):
        print(f"usage: {argv[0]} kernel|ganesha FILE", file=sys.stderr)
        return 2
    backend, candidate = argv[1], argv[2]
    with open(candidate, encoding="utf-8") as handle:
        text = handle.read()
    problems: list[str] = []
    if backend == "kernel":
        paths = kernel_paths(text)
    else:
        exports = ganesha_exports(text, problems)
        paths = [e["path"] for e in exports if "path" in e]
        for key in ("export_id", "pseudo"):
            values = [e[key] for e in exports if key in e]
            twice = sorted({v for v in values if values.count(v) > 1})
            problems += [f"{key} {v} is used twice" for v in twice]
    problems += [f"{p} is exported twice" for p in sorted({p for p in paths if paths.count(p) > 1})]
    for path in paths:
        if os.path.islink(path) or not os.path.isdir(path):
            problems.append(f"{path} is not a directory")
        elif backend == "ganesha" and mount_fstype(path) == "overlay":
            problems.append(f"{path} is on an overlay file system, which ganesha cannot export: use a volume")
    for problem in problems:
        print(f"{candidate}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
