"""`ansible-doc -t filter mailstack.site.NAME` works for every filter of the project's collection, and
says what the code does.

The filters are found the way Ansible finds them: every ``FilterModule().filters()`` of every
``plugins/filter/*.py`` of collections/ansible_collections/mailstack/site, so a filter added later is
checked without touching this file; each file holds one filter, named as the file. One
``ansible-doc --json`` call reads the documentation of all of them (the sidecar
``plugins/filter/<filter>.yml``); each filter must then have a parsed DOCUMENTATION whose name is
its own, a description, EXAMPLES and RETURN, and options that are the function's parameters
(``_input`` for the first). A variable ``<role>__<name>`` named in a filter's documentation must be
one a role specifies in meta/argument_specs.yml.
"""

from __future__ import annotations

import importlib.util
import inspect
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PLUGIN_DIR = ROOT / "collections" / "ansible_collections" / "mailstack" / "site" / "plugins" / "filter"
FQCN = "mailstack.site."
ANSIBLE_DOC = Path(sys.executable).parent / "ansible-doc"
ROLE_VARIABLE = re.compile(r"\b[a-z][a-z0-9_]*__[a-z0-9_]+\b")


def discover_filters() -> dict[str, Callable[..., Any]]:
    filters: dict[str, Callable[..., Any]] = {}
    for path in sorted(PLUGIN_DIR.glob("*.py")):
        spec = importlib.util.spec_from_file_location(f"mailstack_filter_docs_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        exported = module.FilterModule().filters()
        assert list(exported) == [path.stem], (
            f"{path}: one filter per file, named as the file: {list(exported)}"
        )
        filters.update(exported)
    return filters


FILTERS = discover_filters()


def specified_variables() -> set[str]:
    """Role variables (argument_specs), the playbooks' derived variables (playbooks/vars/) and the
    inventory-wide ones the sample inventory documents (group_vars/all, host variables)."""
    names: set[str] = set()
    for path in ROOT.glob("roles/*/meta/argument_specs.yml"):
        for entry in yaml.safe_load(path.read_text())["argument_specs"].values():
            names.update(entry.get("options", {}))
    sample = ROOT / "inventories" / "production-sample"
    for path in [*ROOT.glob("playbooks/vars/*.yml"), *sample.glob("group_vars/all/*.yml")]:
        names.update(yaml.safe_load(path.read_text()) or {})
    # What the playbooks set (the topology fact, the run's inputs of the lifecycle playbooks).
    for path in ROOT.glob("playbooks/**/*.yml"):
        names.update(keys(yaml.safe_load(path.read_text())))

    def host_vars(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "hosts" and isinstance(value, dict):
                    for hvars in value.values():
                        names.update(hvars or {})
                else:
                    host_vars(value)

    host_vars(yaml.safe_load((sample / "hosts.yml").read_text()))
    return names


def keys(node: Any) -> set[str]:
    """Every mapping key of a YAML document that names a site variable (mailstack__...)."""
    if isinstance(node, dict):
        found = {k for k in node if isinstance(k, str) and k.startswith("mailstack__")}
        return found.union(*(keys(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(keys(value) for value in node))
    return set()


def strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in strings(value)]
    return [node] if isinstance(node, str) else []


def doc_problems(name: str, func: Callable[..., Any], entry: dict | None, stderr: str) -> list[str]:
    """What is wrong with one filter's ansible-doc output (an empty list: nothing)."""
    problems = [line for line in stderr.splitlines() if name in line]
    if entry is None:
        return [*problems, f"{name}: ansible-doc returned no documentation"]
    doc = entry.get("doc") or {}
    if doc.get("name") != name:
        problems.append(f"{name}: DOCUMENTATION names {doc.get('name')!r}")
    for key in ("short_description", "description"):
        if not doc.get(key):
            problems.append(f"{name}: DOCUMENTATION has no {key}")
    if not (entry.get("examples") or "").strip():
        problems.append(f"{name}: no EXAMPLES")
    if "_value" not in (entry.get("return") or {}):
        problems.append(f"{name}: RETURN has no _value")
    params = list(inspect.signature(func).parameters)
    wanted = {"_input", *params[1:]}
    documented = set(doc.get("options") or {})
    if documented != wanted:
        problems.append(f"{name}: options {sorted(documented)} are not the parameters {sorted(wanted)}")
    found = {name for text in strings(entry) for name in ROLE_VARIABLE.findall(text)}
    unknown = sorted(found - specified_variables())
    if unknown:
        problems.append(f"{name}: names variables no role specifies: {unknown}")
    return problems


@pytest.fixture(scope="module")
def ansible_doc() -> tuple[dict[str, Any], str, int]:
    env = {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    env.setdefault("ANSIBLE_HOME", str(ROOT / ".cache" / "ansible"))
    run = subprocess.run(
        [str(ANSIBLE_DOC), "-t", "filter", "--json", *(FQCN + name for name in sorted(FILTERS))],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    try:
        docs = json.loads(run.stdout)
    except json.JSONDecodeError:
        docs = {}
    return docs, run.stderr, run.returncode


def test_filters_are_discovered():
    expected = {"postfix_instances", "topology", "merge_layers", "firewall_nftables", "mailman_runners"}
    assert expected <= set(FILTERS)


def test_ansible_doc_succeeds(ansible_doc):
    _, stderr, returncode = ansible_doc
    assert returncode == 0, stderr


@pytest.mark.parametrize("name", sorted(FILTERS))
def test_ansible_doc_documents_the_filter(name, ansible_doc):
    docs, stderr, _ = ansible_doc
    assert doc_problems(name, FILTERS[name], docs.get(FQCN + name), stderr) == []


def test_problems_are_found():
    """The checks above can fail: missing docs, a parse error, wrong options and names are reported."""

    def sample(_input, instance="-"):
        return _input

    assert doc_problems("sample", sample, None, "") == ["sample: ansible-doc returned no documentation"]
    broken = "[ERROR]: filter sample Missing documentation (or could not parse documentation)"
    assert broken in doc_problems("sample", sample, None, broken)
    entry = {
        "doc": {"name": "other", "short_description": "x", "description": ["x"], "options": {"_input": {}}},
        "examples": "x: 1",
        "return": {"_value": {}},
    }
    assert doc_problems("sample", sample, entry, "") == [
        "sample: DOCUMENTATION names 'other'",
        "sample: options ['_input'] are not the parameters ['_input', 'instance']",
    ]
    entry["doc"].update(name="sample", options={"_input": {}, "instance": {}})
    entry["examples"] = "x: '{{ postfix__host_maincf }}'"
    assert doc_problems("sample", sample, entry, "") == [
        "sample: names variables no role specifies: ['postfix__host_maincf']",
    ]
