#!/usr/bin/python
"""Ansible module: PostgreSQL login roles (SCRAM passwords) and databases, through psql."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: postgresql_objects
short_description: Ensure PostgreSQL login roles and databases, comparing SCRAM verifiers
description:
  - Reads C(pg_authid) and C(pg_database) in one C(psql) call run as the cluster's superuser
    (peer authentication over the Unix socket), then creates, alters or drops what differs.
  - A role's password is compared with its stored C(SCRAM-SHA-256) verifier, so an unchanged
    password is never re-sent and a second run reports no change.
  - Supports check mode and diff mode (names only; passwords never appear).
options:
  roles:
    description: Login roles.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description: Role name (required).
        type: str
      password:
        description:
          - Clear-text password, stored as a SCRAM-SHA-256 verifier (required unless absent). Never logged.
        type: str
      state:
        description: C(absent) drops the role.
        type: str
        choices: [present, absent]
        default: present
  databases:
    description: Databases. Each item has C(name), C(owner), optional C(encoding) (UTF8) and C(state).
    type: list
    elements: dict
    default: []
  superuser:
    description: Operating-system user that runs C(psql) (peer authentication).
    type: str
    default: postgres
  port:
    description: Port of the cluster (Unix socket suffix).
    type: int
    default: 5432
"""

EXAMPLES = r"""
- name: Ensure the Mailman database and its owner
  postgresql_objects:
    roles:
      - name: mailman
        password: "{{ vault_mailman_db_password }}"
    databases:
      - name: mailman
        owner: mailman
  no_log: true
"""

RETURN = r"""
created_roles: {description: Roles created, type: list, returned: always}
altered_roles: {description: Roles whose password or login flag was changed, type: list, returned: always}
dropped_roles: {description: Roles dropped, type: list, returned: always}
created_databases: {description: Databases created, type: list, returned: always}
altered_databases: {description: Databases whose owner was changed, type: list, returned: always}
dropped_databases: {description: Databases dropped, type: list, returned: always}
"""

import base64  # noqa: E402
import hashlib  # noqa: E402
import hmac  # noqa: E402
import json  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

STATE_QUERY = (
    "SELECT json_build_object("
    "'roles', (SELECT coalesce(json_object_agg(rolname, json_build_object("
    "'password', rolpassword, 'login', rolcanlogin)), '{}') FROM pg_authid), "
    "'databases', (SELECT coalesce(json_object_agg(datname, json_build_object("
    "'owner', pg_get_userbyid(datdba), 'encoding', pg_encoding_to_char(encoding))), '{}') "
    "FROM pg_database))"
)


def scram_matches(verifier: str | None, password: str) -> bool:
    """True when `verifier` (pg_authid.rolpassword) is the SCRAM-SHA-256 verifier of `password`."""
    if not verifier or not verifier.startswith("SCRAM-SHA-256$"):
        return False
    try:
        iter_salt, keys = verifier[len("SCRAM-SHA-256$"):].split("$", 1)
        iterations, salt = iter_salt.split(":", 1)
        stored_key, server_key = keys.split(":", 1)
        salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    except ValueError:
        return False
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    server = hmac.new(salted, b"Server Key", "sha256").digest()
    return hmac.compare_digest(base64.b64encode(hashlib.sha256(client_key).digest()).decode(), stored_key) \
        and hmac.compare_digest(base64.b64encode(server).decode(), server_key)


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            # Only the passwords are secret: a no_log on the whole list would mask every value in it
            # (role names, "present") wherever it appears in the result, database names included.
            "roles": {"type": "list", "elements": "dict", "default": [], "options": {
                "name": {"type": "str"},
                "password": {"type": "str", "no_log": True},
                "state": {"type": "str", "default": "present", "choices": ["present", "absent"]},
            }},
            "databases": {"type": "list", "elements": "dict", "default": []},
            "superuser": {"type": "str", "default": "postgres"},
            "port": {"type": "int", "default": 5432},
        },
        supports_check_mode=True,
    )
    psql = [
        "runuser", "-u", module.params["superuser"], "--",
        "psql", "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1",
        "-p", str(module.params["port"]), "-d", "postgres",
    ]

    def run_sql(sql: str) -> str:
        rc, out, err = module.run_command(psql, data=sql, binary_data=True)
        if rc != 0:
            module.fail_json(msg=f"postgresql_objects: psql failed (rc {rc}): {err.strip()}")
        return out

    state = json.loads(run_sql(STATE_QUERY + ";\n"))
    statements: list[str] = []
    result: dict[str, list[str]] = {k: [] for k in (
        "created_roles", "altered_roles", "dropped_roles",
        "created_databases", "altered_databases", "dropped_databases")}

    for role in module.params["roles"]:
        name = role.get("name")
        if not name:
            module.fail_json(msg="postgresql_objects: a role has no name")
        current = state["roles"].get(name)
        if role.get("state", "present") == "absent":
            if current is not None:
                statements.append(f"DROP ROLE {ident(name)};")
                result["dropped_roles"].append(name)
            continue
        password = role.get("password")
        if not password:
            module.fail_json(msg=f"postgresql_objects: role '{name}': password is empty")
        if current is None:
            statements.append(f"CREATE ROLE {ident(name)} LOGIN PASSWORD {literal(password)};")
            result["created_roles"].append(name)
        elif not current["login"] or not scram_matches(current["password"], password):
            statements.append(f"ALTER ROLE {ident(name)} LOGIN PASSWORD {literal(password)};")
            result["altered_roles"].append(name)

    for db in module.params["databases"]:
        name, owner = db.get("name"), db.get("owner")
        if not name:
            module.fail_json(msg="postgresql_objects: a database has no name")
        current = state["databases"].get(name)
        if db.get("state", "present") == "absent":
            if current is not None:
                statements.append(f"DROP DATABASE {ident(name)};")
                result["dropped_databases"].append(name)
            continue
        if not owner:
            module.fail_json(msg=f"postgresql_objects: database '{name}': owner is empty")
        encoding = db.get("encoding", "UTF8")
        if current is None:
            statements.append(
                f"CREATE DATABASE {ident(name)} OWNER {ident(owner)} "
                f"ENCODING {literal(encoding)} TEMPLATE template0;")
            result["created_databases"].append(name)
        elif current["owner"] != owner:
            statements.append(f"ALTER DATABASE {ident(name)} OWNER TO {ident(owner)};")
            result["altered_databases"].append(name)
        elif current["encoding"] != encoding:
            module.fail_json(msg=f"postgresql_objects: database '{name}' exists with encoding "
                                 f"{current['encoding']}, wanted {encoding}: not recreated")

    changed = bool(statements)
    if changed and not module.check_mode:
        # The password-encryption setting makes the server store SCRAM verifiers, never the clear text.
        run_sql("SET password_encryption = 'scram-sha-256';\n" + "\n".join(statements) + "\n")
    diff = {"before": "", "after": "".join(f"{k}: {', '.join(v)}\n" for k, v in result.items() if v)}
    module.exit_json(changed=changed, diff=diff, **result)


if __name__ == "__main__":
    main()
