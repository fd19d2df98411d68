"""Every role's meta/argument_specs.yml against its defaults: complete, and right about them.

The README variable tables are generated from the specifications (scripts/role-docs), so a
specification that misses a variable, or states a default the role does not have, is a wrong doc.
Checked here for every role:
- every variable of defaults/ has a specification, and every specified variable has a default;
- a ``default`` stated in the specification is the one of defaults/ (the same text for templates);
- the defaults that are plain data (no Jinja) pass Ansible's own argument-spec validation (types,
  list elements, choices, required sub-options), as the role's implicit validation task would do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

ROOT = Path(__file__).resolve().parents[2]
ROLES = sorted(p.parent.parent for p in ROOT.glob("roles/*/meta/argument_specs.yml"))
# Keys of a role argument spec that Ansible's validator does not know (documentation only).
DOC_KEYS = {"description", "version_added"}


def role_defaults(role: Path) -> dict[str, Any]:
    values: dict[str, Any] = {}
    files = [role / "defaults" / "main.yml", *sorted((role / "defaults" / "main").glob("*.yml"))]
    for f in files:
        if f.is_file():
            values.update(yaml.safe_load(f.read_text()) or {})
    return values


def role_options(role: Path) -> dict[str, dict]:
    """The options of every entry point (main, and tasks_from ones such as postfix_queue's drain)."""
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    options: dict[str, dict] = {}
    for entry in specs.values():
        for name, spec in entry.get("options", {}).items():
            options.setdefault(name, spec)
    return options


def test_entry_points_agree_on_the_variables_they_share(role):
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    seen: dict[str, tuple] = {}
    for entry_point, entry in specs.items():
        for name, spec in entry.get("options", {}).items():
            facts = (spec.get("type", "str"), spec.get("default"), spec.get("elements"))
            assert seen.setdefault(name, facts) == facts, (
                f"{entry_point}: {name} differs from another entry point"
            )


def templated(value: Any) -> bool:
    """True when a value holds Jinja anywhere: only the play can tell what it becomes."""
    if isinstance(value, str):
        return "{{" in value or "{%" in value
    if isinstance(value, dict):
        return any(templated(v) for v in value.values())
    if isinstance(value, list):
        return any(templated(v) for v in value)
    return False


def validator_spec(options: dict[str, dict]) -> dict[str, dict]:
    """The argument spec without its documentation keys, as Ansible's validator takes it."""
    out = {}
    for name, spec in options.items():
        clean = {k: v for k, v in spec.items() if k not in DOC_KEYS}
        if "options" in clean:
            clean["options"] = validator_spec(clean["options"])
        out[name] = clean
    return out


@pytest.fixture(params=ROLES, ids=[r.name for r in ROLES])
def role(request) -> Path:
    return request.param


def test_roles_are_found():
    assert {r.name for r in ROLES} >= {"clamav", "common", "mailman_core", "postfix", "postgresql", "rspamd"}


def test_every_default_is_specified_and_every_option_has_a_default(role):
    defaults, options = role_defaults(role), role_options(role)
    assert sorted(set(defaults) - set(options)) == [], "variables of defaults/ missing in argument_specs"
    missing = sorted(name for name in set(options) - set(defaults) if not options[name].get("required"))
    assert missing == [], "specified variables without a default (and not required)"


def test_every_option_is_described(role):
    def undocumented(options: dict[str, dict], path: str) -> list[str]:
        bad = []
        for name, spec in options.items():
            if not spec.get("description"):
                bad.append(path + name)
            if spec.get("type", "str") == "list" and "elements" not in spec:
                bad.append(path + name + " (list without elements)")
            bad += undocumented(spec.get("options", {}), f"{path}{name}.")
        return bad

    assert undocumented(role_options(role), "") == []


def test_specified_defaults_are_the_role_defaults(role):
    defaults, options = role_defaults(role), role_options(role)
    wrong = {
        name: (spec["default"], defaults.get(name))
        for name, spec in options.items()
        if "default" in spec and spec["default"] != defaults.get(name)
    }
    assert wrong == {}, "argument_specs default != defaults/ value: {name: (spec, defaults)}"


def test_plain_defaults_pass_the_argument_spec(role):
    defaults, options = role_defaults(role), role_options(role)
    plain = {name: value for name, value in defaults.items() if not templated(value)}
    spec = validator_spec({name: options[name] for name in plain if name in options})
    result = ArgumentSpecValidator(spec).validate(plain)
    assert result.error_messages == []


def test_choices_include_the_default(role):
    def bad(options: dict[str, dict], path: str) -> list[str]:
        out = []
        for name, spec in options.items():
            if "choices" in spec and "default" in spec and spec["default"] not in spec["choices"]:
                out.append(path + name)
            out += bad(spec.get("options", {}), f"{path}{name}.")
        return out

    assert bad(role_options(role), "") == []


def test_the_check_finds_a_wrong_type():
    """The validation above can fail: a string where the spec says int is reported."""
    spec = validator_spec({"x__port": {"type": "int", "description": "A port."}})
    result = ArgumentSpecValidator(spec).validate({"x__port": "many"})
    assert result.error_messages
