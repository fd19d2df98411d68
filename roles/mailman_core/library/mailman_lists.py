#!/usr/bin/python
"""Ansible module: Mailman 3 domains, lists, owners, moderators, settings and members as data."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: mailman_lists
short_description: Make Mailman 3 domains and lists match data, in one call per host
description:
  - Domains, lists, list settings, owners and moderators go through Mailman's REST API (urllib).
  - Regular members go through one helper process run as the Mailman user inside Mailman's own
    environment and database connection, which reads every roster with one query and adds or removes
    members in one transaction (10,000 addresses take seconds; the REST API needs about 30 ms per
    member and C(mailman addmembers) about 25 ms). Added members are verified addresses subscribed
    without welcome messages, as C(mailman addmembers -W) would do. The helper targets Mailman 3.3's schema
    on PostgreSQL.
  - A list absent from the data is left alone; C(state=absent) deletes it.
  - Supports check mode (the member helper rolls back) and diff mode.
options:
  rest_url: {description: REST root, e.g. http://127.0.0.1:8001/3.1, type: str, required: true}
  rest_user: {description: REST admin user, type: str, required: true}
  rest_password: {description: REST admin password, type: str, required: true, no_log: true}
  domains: {description: "Domains: {name, description, state}", type: list, elements: dict, default: []}
  lists:
    description: Lists; owners, moderators and members are managed only when given (not null).
    type: list
    elements: dict
    default: []
    suboptions:
      name: {description: list@domain, type: str, required: true}
      style: {description: Mailman list style at creation, type: str}
      owners: {description: Owners (exactly these), type: list, elements: str}
      moderators: {description: Moderators (exactly these), type: list, elements: str}
      settings: {description: REST config settings of the list, type: dict}
      members:
        description:
          - Regular members to ensure. Never in the output (no_log), neither in the module's arguments
            nor in its changes, which count them.
        type: list
        elements: str
        no_log: true
      purge_members: {description: Remove regular members not in C(members), type: bool, default: false}
      state:
        description: C(absent) deletes the list
        type: str
        choices: [present, absent]
        default: present
  default_settings:
    description: REST config settings of every list, under each list's own C(settings) (which win).
    type: dict
    default: {}
  config_file: {description: Mailman configuration file, type: str, default: /etc/mailman3/mailman.cfg}
  mailman_user: {description: User the member helper runs as, type: str, default: list}
  wait: {description: Seconds to wait for the REST API to answer, type: int, default: 60}
  timeout:
    description: Seconds one REST request may take (deleting a list with many members is slow in Mailman).
    type: int
    default: 900
"""

EXAMPLES = r"""
- name: Lists as data
  mailman_lists:
    rest_url: http://127.0.0.1:8001/3.1
    rest_user: restadmin
    rest_password: "{{ mailman_core__rest_password }}"
    domains: [{name: lists.example.test}]
    lists:
      - name: dev@lists.example.test
        owners: [owner@example.test]
        settings: {subject_prefix: "[dev] ", max_message_size: 100}
        members: [a@example.test, b@example.test]
"""

RETURN = r"""
changes:
  description: One line per change made (or that would be made in check mode).
  type: list
  returned: always
"""

import base64  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402
import urllib.error  # noqa: E402
import urllib.parse  # noqa: E402
import urllib.request  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

# Run as the Mailman user with the Mailman config: reads each roster with one query, adds the missing
# regular members in bulk (preferences, addresses, members), removes the extra ones when asked. Input and
# output are JSON. Written against Mailman 3.3's schema (Debian 12: 3.3.8) on PostgreSQL.
MEMBER_HELPER = r'''
import datetime, json, sys, uuid
request = json.load(sys.stdin)
from mailman.core.initialize import initialize
initialize(request["config"])
from mailman.config import config
from sqlalchemy import text
store = config.db.store
if store.bind.dialect.name != "postgresql":
    sys.exit("mailman_lists: bulk membership needs PostgreSQL, the database is " + store.bind.dialect.name)
result = {}
for item in request["lists"]:
    list_id = item["list_id"]
    want = {e.lower(): e for e in item["members"]}
    rows = store.execute(text(
        "SELECT a.email, m.id, m.preferences_id FROM member m JOIN address a ON a.id = m.address_id "
        "WHERE m.list_id = :l AND m.role = 1"), {"l": list_id}).fetchall()
    have = {r[0]: (r[1], r[2]) for r in rows}
    add = [e for e in want if e not in have]
    remove = sorted(e for e in have if e not in want) if item["purge"] else []
    if add:
        known = dict(store.execute(text(
            "SELECT email, id FROM address WHERE email = ANY(:e)"), {"e": add}).fetchall())
        new = [e for e in add if e not in known]
        prefs = [r[0] for r in store.execute(text(
            "SELECT nextval('preferences_id_seq') FROM generate_series(1, :n)"), {"n": len(new) + len(add)})]
        store.execute(text("INSERT INTO preferences (id) VALUES (:id)"), [{"id": p} for p in prefs])
        prefs = iter(prefs)
        now = datetime.datetime.utcnow()
        if new:
            store.execute(text(
                "INSERT INTO address (email, _original, verified_on, registered_on, preferences_id) "
                "VALUES (:e, :o, :n, :n, :p)"),
                [{"e": e, "o": want[e] if want[e] != e else None, "n": now, "p": next(prefs)} for e in new])
            known.update(store.execute(text(
                "SELECT email, id FROM address WHERE email = ANY(:e)"), {"e": new}).fetchall())
        store.execute(text(
            "INSERT INTO member (_member_id, role, list_id, address_id, preferences_id, bounce_score, "
            "last_warning_sent, total_warnings_sent) VALUES (:u, 1, :l, :a, :p, 0, :m, 0)"),
            [{"u": uuid.uuid4(), "l": list_id, "a": known[e], "p": next(prefs), "m": datetime.datetime.min}
             for e in add])
    if remove:
        ids = [have[e][0] for e in remove]
        store.execute(text("DELETE FROM member WHERE id = ANY(:i)"), {"i": ids})
        store.execute(text("DELETE FROM preferences WHERE id = ANY(:p)"), {"p": [have[e][1] for e in remove]})
    result[list_id] = {"added": len(add), "removed": len(remove)}
if request["check_mode"]:
    config.db.abort()
else:
    config.db.commit()
json.dump(result, sys.stdout)
'''


class Rest:
    def __init__(self, module: AnsibleModule) -> None:
        self.module = module
        self.root = module.params["rest_url"].rstrip("/")
        token = f"{module.params['rest_user']}:{module.params['rest_password']}".encode()
        self.auth = "Basic " + base64.b64encode(token).decode()

    def call(self, method: str, path: str, data: dict | None = None, ok404: bool = False):
        body = urllib.parse.urlencode(data, doseq=True).encode() if data is not None else None
        req = urllib.request.Request(self.root + "/" + path.lstrip("/"), data=body, method=method,
                                     headers={"Authorization": self.auth})
        try:
            with urllib.request.urlopen(req, timeout=self.module.params["timeout"]) as resp:
                text = resp.read()
                return json.loads(text) if text else None
        except urllib.error.HTTPError as err:
            if ok404 and err.code == 404:
                return None
            detail = err.read().decode(errors="replace")[:500]
            self.module.fail_json(msg=f"mailman_lists: {method} {path}: HTTP {err.code}: {detail}")
        return None

    def entries(self, path: str) -> list[dict]:
        sep = "&" if "?" in path else "?"
        return (self.call("GET", f"{path}{sep}count=100000&page=1") or {}).get("entries", [])


def same(want, have) -> bool:  # noqa: PLR0911
    """Compare a value from the data with the REST API's JSON value."""
    if isinstance(have, bool):
        if isinstance(want, bool):
            return want == have
        truthy = ("true", "yes", "on", "1") if have else ("false", "no", "off", "0")
        return str(want).strip().lower() in truthy
    if isinstance(have, list):
        return isinstance(want, list) and [str(w) for w in want] == [str(h) for h in have]
    if have is None:
        return want in (None, "")
    if isinstance(have, float) and not isinstance(want, bool):
        try:
            return float(want) == have
        except (TypeError, ValueError):
            return False
    return str(want) == str(have)


def form_value(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


ARGUMENT_SPEC = {
    "rest_url": {"type": "str", "required": True},
    "rest_user": {"type": "str", "required": True},
    "rest_password": {"type": "str", "required": True, "no_log": True},
    "domains": {"type": "list", "elements": "dict", "default": []},
    "lists": {"type": "list", "elements": "dict", "default": [], "options": {
        "name": {"type": "str", "required": True},
        "style": {"type": "str"},
        "owners": {"type": "list", "elements": "str"},
        "moderators": {"type": "list", "elements": "str"},
        "settings": {"type": "dict"},
        # Member addresses are personal data: masked in the invocation, and never printed.
        "members": {"type": "list", "elements": "str", "no_log": True},
        "purge_members": {"type": "bool", "default": False},
        "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
    }},
    "default_settings": {"type": "dict", "default": {}},
    "config_file": {"type": "str", "default": "/etc/mailman3/mailman.cfg"},
    "mailman_user": {"type": "str", "default": "list"},
    "wait": {"type": "int", "default": 60},
    "timeout": {"type": "int", "default": 900},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec=ARGUMENT_SPEC,
        supports_check_mode=True,
    )
    check = module.check_mode
    rest = Rest(module)
    changes: list[str] = []

    deadline = time.monotonic() + module.params["wait"]
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(
                rest.root + "/system/versions", headers={"Authorization": rest.auth}), timeout=5).read()
            break
        except (urllib.error.URLError, OSError) as err:
            if time.monotonic() > deadline:
                module.fail_json(msg=f"mailman_lists: the REST API at {rest.root} does not answer: {err}")
            time.sleep(1)

    # Domains.
    have_domains = {d["mail_host"]: d for d in rest.entries("domains")}
    for domain in module.params["domains"]:
        name = str(domain.get("name", "")).lower()
        if not name:
            module.fail_json(msg="mailman_lists: a domain has no name")
        if domain.get("state", "present") == "absent":
            if name in have_domains:
                changes.append(f"delete domain {name}")
                if not check:
                    rest.call("DELETE", f"domains/{name}")
            continue
        if name not in have_domains:
            changes.append(f"create domain {name}")
            if not check:
                data = {"mail_host": name}
                if domain.get("description"):
                    data["description"] = domain["description"]
                rest.call("POST", "domains", data)
        elif domain.get("description") is not None \
                and have_domains[name].get("description") != domain["description"]:
            changes.append(f"domain {name}: description")
            if not check:
                rest.call("PATCH", f"domains/{name}", {"description": domain["description"]})

    # Lists.
    have_lists = {ml["fqdn_listname"]: ml for ml in rest.entries("lists")}
    bulk: list[dict] = []
    for item in module.params["lists"]:
        fqdn = str(item.get("name", "")).lower()
        if fqdn.count("@") != 1:
            module.fail_json(msg=f"mailman_lists: list '{fqdn}': name must be list@domain")
        list_id = fqdn.replace("@", ".")
        exists = fqdn in have_lists
        if item.get("state", "present") == "absent":
            if exists:
                changes.append(f"delete list {fqdn}")
                if not check:
                    rest.call("DELETE", f"lists/{list_id}")
            continue
        if not exists:
            changes.append(f"create list {fqdn}")
            if not check:
                data = {"fqdn_listname": fqdn}
                if item.get("style"):
                    data["style_name"] = item["style"]
                rest.call("POST", "lists", data)
        created_in_check = check and not exists

        settings = {**module.params["default_settings"], **(item.get("settings") or {})}
        current = {} if created_in_check else (rest.call("GET", f"lists/{list_id}/config") or {})
        patch = {}
        for key, value in settings.items():
            if key not in current and not created_in_check:
                module.fail_json(msg=f"mailman_lists: list '{fqdn}': unknown setting '{key}'")
            if created_in_check or not same(value, current[key]):
                patch[key] = form_value(value)
        if patch:
            changes.append(f"list {fqdn}: set {', '.join(sorted(patch))}")
            if not check:
                rest.call("PATCH", f"lists/{list_id}/config", patch)

        for role in ("owner", "moderator"):
            if item.get(f"{role}s") is None:
                continue
            want = {str(e).lower() for e in item[f"{role}s"] or []}
            roster = [] if created_in_check else rest.entries(f"lists/{list_id}/roster/{role}")
            have = {m["email"].lower(): m["member_id"] for m in roster}
            for email in sorted(want - set(have)):
                changes.append(f"list {fqdn}: add {role} {email}")
                if not check:
                    rest.call("POST", "members", {
                        "list_id": list_id, "subscriber": email, "role": role, "pre_verified": "true",
                        "pre_confirmed": "true", "pre_approved": "true", "send_welcome_message": "false"})
            for email in sorted(set(have) - want):
                changes.append(f"list {fqdn}: remove {role} {email}")
                if not check:
                    rest.call("DELETE", f"members/{have[email]}")

        if item.get("members") is not None:
            members = [str(e).strip() for e in item["members"] or []]
            bad = [e for e in members if e.count("@") != 1 or " " in e]
            if bad:
                module.fail_json(msg=f"mailman_lists: list '{fqdn}': {len(bad)} invalid member addresses "
                                     f"(one with a space or without exactly one @)")
            if created_in_check:
                if members:
                    changes.append(f"list {fqdn}: add {len(members)} members")
            else:
                bulk.append({"list_id": list_id, "members": members,
                             "purge": bool(item.get("purge_members", False))})

    if bulk:
        request = {"config": module.params["config_file"], "lists": bulk, "check_mode": check}
        rc, out, err = module.run_command(
            ["runuser", "-u", module.params["mailman_user"], "--", "/usr/bin/python3", "-c", MEMBER_HELPER],
            data=json.dumps(request), binary_data=True)
        if rc != 0:
            module.fail_json(msg=f"mailman_lists: member helper failed (rc {rc}): {err.strip()[-2000:]}")
        for list_id, res in sorted(json.loads(out).items()):
            if res["added"]:
                changes.append(f"list {list_id}: add {res['added']} members")
            if res["removed"]:
                changes.append(f"list {list_id}: remove {res['removed']} members")

    module.exit_json(changed=bool(changes), changes=changes,
                     diff={"before": "", "after": "".join(c + "\n" for c in changes)})


if __name__ == "__main__":
    main()
