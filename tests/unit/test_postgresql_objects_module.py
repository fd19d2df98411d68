"""roles/postgresql/library/postgresql_objects.py without a database.

The module reads the cluster's state with one psql call and writes what differs with a second.
Here psql is replaced by a stand-in that answers the state query with a given state and records
the SQL of the second call: the tests check the statements built (quoting included), that an
unchanged state writes nothing (idempotence), check mode, and the error paths. The SCRAM-SHA-256
comparison is checked against verifiers computed here from RFC 5802/7677, independently of the
module. Its behaviour against a real PostgreSQL is the molecule scenario roles/postgresql.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args

# Every write starts by making the server store SCRAM verifiers.
SCRAM_ON = "SET password_encryption = 'scram-sha-256';\n"
MODULE = Path(__file__).resolve().parents[2] / "roles" / "postgresql" / "library" / "postgresql_objects.py"
spec = importlib.util.spec_from_file_location("postgresql_objects", MODULE)
postgresql_objects = importlib.util.module_from_spec(spec)
spec.loader.exec_module(postgresql_objects)


def scram_verifier(password: str, salt: bytes = b"0123456789abcdef", iterations: int = 4096) -> str:
    """A SCRAM-SHA-256 verifier as PostgreSQL stores it in pg_authid.rolpassword."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", "sha256").digest()
    salt64, stored64, server64 = (base64.b64encode(b).decode() for b in (salt, stored_key, server_key))
    return f"SCRAM-SHA-256${iterations}:{salt64}${stored64}:{server64}"


def cluster(roles: dict[str, Any] | None = None, databases: dict[str, Any] | None = None) -> dict[str, Any]:
    """The state query's answer: roles {name: (password, login)}, databases {name: (owner, encoding)}."""
    return {
        "roles": {n: {"password": p, "login": login} for n, (p, login) in (roles or {}).items()},
        "databases": {n: {"owner": o, "encoding": e} for n, (o, e) in (databases or {}).items()},
    }


def run_module(monkeypatch, capsys, args: dict[str, Any], state: dict[str, Any],
               check_mode: bool = False) -> tuple[dict[str, Any], list[str]]:
    """Run the module's main() with psql replaced; return its JSON result and the SQL sent after the read."""
    calls: list[tuple[list[str], str]] = []

    def fake_run_command(self, cmd, data=None, binary_data=False, **kwargs):
        calls.append((cmd, data))
        if len(calls) == 1:
            assert data == postgresql_objects.STATE_QUERY + ";\n"
            return 0, json.dumps(state), ""
        return 0, "", ""

    monkeypatch.setattr(basic.AnsibleModule, "run_command", fake_run_command)
    if check_mode:
        args = {**args, "_ansible_check_mode": True}
    with patch_module_args(args), pytest.raises(SystemExit):
        postgresql_objects.main()
    result = json.loads(capsys.readouterr().out)
    psql = calls[0][0]
    assert psql[:4] == ["runuser", "-u", args.get("superuser", "postgres"), "--"]
    assert psql[psql.index("-p") + 1] == str(args.get("port", 5432))
    return result, [data for _, data in calls[1:]]


# ---- SCRAM comparison --------------------------------------------------------------------------

def test_scram_matches_its_password():
    verifier = scram_verifier("s3cret")
    assert postgresql_objects.scram_matches(verifier, "s3cret")
    assert postgresql_objects.scram_matches(scram_verifier("s3cret", b"other salt", 10000), "s3cret")


@pytest.mark.parametrize("verifier", [
    scram_verifier("other"),
    "md5" + hashlib.md5(b"s3cretmailman").hexdigest(),  # an MD5 verifier is never taken as a match
    "s3cret",                                          # a clear-text password either
    None, "", "SCRAM-SHA-256$", "SCRAM-SHA-256$4096:c2FsdA==", "SCRAM-SHA-256$x:c2FsdA==$a:b",
    "SCRAM-SHA-256$4096:!!notbase64$a:b",
])
def test_scram_does_not_match(verifier):
    assert not postgresql_objects.scram_matches(verifier, "s3cret")


def test_quoting():
    assert postgresql_objects.ident('we"ird') == '"we""ird"'
    assert postgresql_objects.literal("it's") == "'it''s'"


# ---- what the module writes --------------------------------------------------------------------

def test_creates_missing_role_and_database(monkeypatch, capsys):
    result, sql = run_module(monkeypatch, capsys, {
        "roles": [{"name": "mailman", "password": "pw"}],
        "databases": [{"name": "mailman", "owner": "mailman"}],
    }, cluster())
    assert result["changed"] is True
    assert result["created_roles"] == ["mailman"]
    assert result["created_databases"] == ["mailman"]
    assert sql == [
        f"{SCRAM_ON}"
        "CREATE ROLE \"mailman\" LOGIN PASSWORD 'pw';\n"
        "CREATE DATABASE \"mailman\" OWNER \"mailman\" ENCODING 'UTF8' TEMPLATE template0;\n"
    ]


def test_unchanged_state_writes_nothing(monkeypatch, capsys):
    """Idempotence: the stored verifier matches, the owner is right: one read, no write, no change."""
    result, sql = run_module(monkeypatch, capsys, {
        "roles": [{"name": "mailman", "password": "pw"}],
        "databases": [{"name": "mailman", "owner": "mailman", "encoding": "UTF8"}],
    }, cluster({"mailman": (scram_verifier("pw"), True)}, {"mailman": ("mailman", "UTF8")}))
    assert result["changed"] is False
    assert sql == []
    assert not any(result[k] for k in result if k.endswith(("_roles", "_databases")))


@pytest.mark.parametrize(("stored", "login"), [
    (scram_verifier("old"), True),   # another password
    (scram_verifier("pw"), False),   # right password, but NOLOGIN
    ("md5" + hashlib.md5(b"pwmailman").hexdigest(), True),  # an MD5 verifier: re-sent, stored as SCRAM
    (None, True),                    # no password at all
])
def test_alters_role_whose_password_or_login_differs(monkeypatch, capsys, stored, login):
    result, sql = run_module(monkeypatch, capsys, {"roles": [{"name": "mailman", "password": "pw"}]},
                             cluster({"mailman": (stored, login)}))
    assert result["changed"] is True
    assert result["altered_roles"] == ["mailman"]
    assert sql == [f"{SCRAM_ON}ALTER ROLE \"mailman\" LOGIN PASSWORD 'pw';\n"]


def test_names_and_passwords_are_quoted(monkeypatch, capsys):
    """An identifier with a double quote and a password with a single quote cannot break the SQL."""
    name, password = 'x"; DROP ROLE postgres; --', "it's'; DROP DATABASE mailman; --"
    result, sql = run_module(monkeypatch, capsys, {
        "roles": [{"name": name, "password": password}],
        "databases": [{"name": "db'1", "owner": name, "encoding": "LATIN1"}],
    }, cluster())
    assert result["created_roles"] == [name]
    assert sql == [
        f"{SCRAM_ON}"
        "CREATE ROLE \"x\"\"; DROP ROLE postgres; --\" LOGIN PASSWORD 'it''s''; DROP DATABASE mailman; --';\n"
        "CREATE DATABASE \"db'1\" OWNER \"x\"\"; DROP ROLE postgres; --\" ENCODING 'LATIN1' "
        "TEMPLATE template0;\n"
    ]


def test_drops_only_what_exists(monkeypatch, capsys):
    result, sql = run_module(monkeypatch, capsys, {
        "roles": [{"name": "gone", "state": "absent"}, {"name": "never", "state": "absent"}],
        "databases": [{"name": "olddb", "state": "absent"}, {"name": "nodb", "state": "absent"}],
    }, cluster({"gone": (scram_verifier("x"), True)}, {"olddb": ("gone", "UTF8")}))
    assert result["dropped_roles"] == ["gone"]
    assert result["dropped_databases"] == ["olddb"]
    assert sql == [f"{SCRAM_ON}DROP ROLE \"gone\";\nDROP DATABASE \"olddb\";\n"]


def test_absent_everywhere_is_no_change(monkeypatch, capsys):
    result, sql = run_module(monkeypatch, capsys, {
        "roles": [{"name": "never", "state": "absent"}],
        "databases": [{"name": "nodb", "state": "absent"}],
    }, cluster())
    assert result["changed"] is False
    assert sql == []


def test_changes_the_owner_of_an_existing_database(monkeypatch, capsys):
    result, sql = run_module(monkeypatch, capsys, {"databases": [{"name": "mailman", "owner": "mailman"}]},
                             cluster(databases={"mailman": ("postgres", "UTF8")}))
    assert result["altered_databases"] == ["mailman"]
    assert sql == [f"{SCRAM_ON}ALTER DATABASE \"mailman\" OWNER TO \"mailman\";\n"]


def test_check_mode_reports_but_writes_nothing(monkeypatch, capsys):
    result, sql = run_module(monkeypatch, capsys, {
        "roles": [{"name": "mailman", "password": "pw"}],
        "databases": [{"name": "mailman", "owner": "mailman"}],
    }, cluster(), check_mode=True)
    assert result["changed"] is True
    assert result["created_roles"] == ["mailman"]
    assert sql == []
    assert result["diff"] == {"before": "", "after": "created_roles: mailman\ncreated_databases: mailman\n"}


def test_passwords_never_appear_in_the_result(monkeypatch, capsys):
    result, _ = run_module(monkeypatch, capsys, {"roles": [{"name": "mailman", "password": "Zq8-secret"}]},
                           cluster())
    assert "Zq8-secret" not in json.dumps(result)


def test_port_and_superuser_reach_psql(monkeypatch, capsys):
    result, _ = run_module(monkeypatch, capsys, {"superuser": "pgadmin", "port": 5433}, cluster())
    assert result["changed"] is False


# ---- error paths -------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "state", "message"), [
    ({"roles": [{"password": "pw"}]}, cluster(), "postgresql_objects: a role has no name"),
    ({"roles": [{"name": "mailman"}]}, cluster(), "postgresql_objects: role 'mailman': password is empty"),
    ({"roles": [{"name": "mailman", "password": ""}]}, cluster(),
     "postgresql_objects: role 'mailman': password is empty"),
    ({"databases": [{"owner": "mailman"}]}, cluster(), "postgresql_objects: a database has no name"),
    ({"databases": [{"name": "mailman"}]}, cluster(),
     "postgresql_objects: database 'mailman': owner is empty"),
    ({"databases": [{"name": "mailman", "owner": "mailman", "encoding": "UTF8"}]},
     cluster(databases={"mailman": ("mailman", "SQL_ASCII")}),
     "postgresql_objects: database 'mailman' exists with encoding SQL_ASCII, wanted UTF8: not recreated"),
])
def test_errors_name_the_object(monkeypatch, capsys, args, state, message):
    result, sql = run_module(monkeypatch, capsys, args, state)
    assert result["failed"] is True
    assert result["msg"] == message
    assert sql == []


def test_psql_failure_is_reported(monkeypatch, capsys):
    def failing_run_command(self, cmd, data=None, binary_data=False, **kwargs):
        return 2, "", "psql: error: connection to server on socket failed: No such file or directory\n"

    monkeypatch.setattr(basic.AnsibleModule, "run_command", failing_run_command)
    with patch_module_args({"roles": []}), pytest.raises(SystemExit):
        postgresql_objects.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    assert result["msg"] == ("postgresql_objects: psql failed (rc 2): "
                             "psql: error: connection to server on socket failed: No such file or directory")


@pytest.mark.parametrize(("role", "message"), [
    ({"name": "mailman", "password": "pw", "state": "gone"},
     "value of state must be one of: present, absent"),
    ({"name": "mailman", "passwd": "pw"}, "Unsupported parameters"),
])
def test_role_entries_are_validated(monkeypatch, capsys, role, message):
    """A typo in a role entry fails before psql runs, and the password is not in the message."""
    calls = []
    monkeypatch.setattr(basic.AnsibleModule, "run_command", lambda *a, **k: calls.append(a) or (0, "{}", ""))
    with patch_module_args({"roles": [role]}), pytest.raises(SystemExit):
        postgresql_objects.main()
    result = json.loads(capsys.readouterr().out)
    assert result["failed"] is True
    assert message in result["msg"]
    assert calls == []


def test_role_names_are_not_masked(monkeypatch, capsys):
    """Only the password is no_log: role and database names stay readable in the result."""
    result, _ = run_module(monkeypatch, capsys, {
        "roles": [{"name": "mailman", "password": "Zq8-secret"}, {"name": "old", "state": "absent"}],
        "databases": [{"name": "mailman", "owner": "mailman"}],
    }, cluster({"old": (None, True)}))
    assert result["created_roles"] == ["mailman"]
    assert result["dropped_roles"] == ["old"]
    assert result["created_databases"] == ["mailman"]
    assert "Zq8-secret" not in json.dumps(result)
