"""No doc or comment of the repository points outside it.

A reader of a clone has the repository only: a path of the machine it was written on, or a file
beside the checkout (``../shared/...``), is a dead reference there. Checked:
- every text file of the repository: no absolute path of a development machine;
- the docs (every ``*.md``, the collection's filter docs ``plugins/filter/*.yml``): each path they name that
  looks like one of the repository (``docs/x.md``, ``roles/...``, ``../x``, ``X.md``) exists in it,
  relative to the doc or to the top directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FILTER_DOCS = ROOT / "collections" / "ansible_collections" / "mailstack" / "site" / "plugins" / "filter"
SKIP_NAMES = {".git", ".venv", ".cache", ".ansible", "__pycache__", ".pytest_cache",
             ".ruff_cache", ".hypothesis", "secret", "state", "results"}
TEXT_SUFFIXES = {".md", ".yml", ".yaml", ".py", ".j2", ".sh", ".cfg", ".toml", ".txt", ".ini", ".conf", ""}
# Absolute paths that exist on a development machine, not in a clone: the shared work directories,
# home directories, the local package mirror.
MACHINE_PATH = re.compile(r"(?<![\w.-])(?:/work/|/root/|/home/[a-z]|/opt/pypi|/opt/wheels)|\.\./shared\b")
# Paths that name something of the repository: under a top-level directory, relative upwards, or a
# Markdown file.
TOP_DIRS = ("roles", "docs", "scripts", "collections", "playbooks", "inventories", "molecule",
            "tests", "bench", ".config", ".ci")
REPO_PATH = re.compile(
    r"(?<![\w./-])((?:\.\./|(?:" + "|".join(re.escape(d) for d in TOP_DIRS) + r")/)[\w./*<>{}$-]+"
    r"|[\w./-]+\.md)\b"
)


def repository_files() -> list[Path]:
    files = []
    for top, dirs, names in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_NAMES]
        for name in names:
            path = Path(top) / name
            # This file spells the forbidden paths out to test the checks.
            if name in SKIP_NAMES or path == Path(__file__).resolve():
                continue
            if path.suffix in TEXT_SUFFIXES and not path.is_symlink():
                files.append(path)
    return sorted(files)


def doc_files() -> list[Path]:
    return [p for p in repository_files()
            if p.suffix == ".md" or (p.parent == FILTER_DOCS and p.suffix == ".yml")]


def machine_paths(text: str) -> list[str]:
    return [m.group(0) for m in MACHINE_PATH.finditer(text)]


def missing_paths(doc: Path, text: str, root: Path = ROOT) -> list[str]:
    """Paths named in a doc that are not in the repository (relative to the doc or to the top)."""
    missing = []
    for m in REPO_PATH.finditer(text):
        name = m.group(1).rstrip(".")
        if not name or any(c in name for c in "*<>{}$"):
            continue
        found = False
        for base in (doc.parent, root):
            target = Path(os.path.normpath(base / name))
            if target.is_relative_to(root) and target.exists():
                found = True
                break
        if not found:
            missing.append(name)
    return missing


def read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        return ""


def test_files_are_found():
    names = {p.relative_to(ROOT).as_posix() for p in doc_files()}
    assert {"README.md", "docs/development.md", "roles/postfix/README.md"} <= names


def test_no_machine_paths():
    found = {p.relative_to(ROOT).as_posix(): machine_paths(read(p)) for p in repository_files()}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_named_paths_are_in_the_repository():
    found = {p.relative_to(ROOT).as_posix(): missing_paths(p, read(p)) for p in doc_files()}
    assert {name: hits for name, hits in found.items() if hits} == {}


def test_outside_references_are_found():
    """The checks can fail."""
    assert machine_paths("see /work/shared/DESIGN.md and ../shared/STYLE.md") == ["/work/", "../shared"]
    assert machine_paths("Postfix reads /etc/postfix/main.cf") == []
    doc = ROOT / "roles" / "postfix" / "README.md"
    text = ("see `../shared/DESIGN.md`, DESIGN.md, `docs/nothing-here.md`, `../../README.md`"
            " and `defaults/main/`")
    assert missing_paths(doc, text) == ["../shared/DESIGN.md", "DESIGN.md", "docs/nothing-here.md"]
