"""roles/postgresql: scram logins from the Mailman hosts only, with stable generated passwords."""

import os
import pathlib

import pytest
from support.molecule_playbook import ansible_playbook
from support.scenario import host

DB = "172.31.14.10"
SECRET = pathlib.Path(os.environ["MOLECULE_EPHEMERAL_DIRECTORY"]) / "secret" / "postgresql"
CONVERGE = pathlib.Path(__file__).resolve().parents[1] / "converge.yml"



def login(client, user, password, db=None, sslmode="prefer"):
    return client.run(
        "PGSSLMODE=%s PGCONNECT_TIMEOUT=5 PGPASSWORD=%s psql -X -At -h %s -U %s -d %s -c %s",
        sslmode, password, DB, user, db or user, "SELECT current_user || ' ' || host(inet_server_addr())",
    )


@pytest.mark.parametrize("user", ["mailman", "mailmanweb"])
def test_allowed_client_logs_in_with_the_generated_password(user):
    password = (SECRET / f"{user}.password").read_text().strip()
    assert len(password) == 32
    result = login(host("postgresql-client"), user, password)
    assert result.rc == 0, result.stderr
    assert result.stdout.strip() == f"{user} {DB}"


def test_a_client_that_does_not_use_tls_is_refused():
    password = (SECRET / "mailman.password").read_text().strip()
    result = login(host("postgresql-client"), "mailman", password, sslmode="disable")
    assert result.rc != 0
    assert "no encryption" in result.stderr, result.stderr
    tls = host("postgresql-client").run(
        "PGCONNECT_TIMEOUT=5 PGPASSWORD=%s psql -X -At -h %s -U mailman -d mailman -c %s",
        password, DB, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    assert tls.stdout.strip() == "t", tls.stderr


def test_wrong_password_is_refused():
    result = login(host("postgresql-client"), "mailman", "not-the-password")
    assert result.rc != 0
    assert "password authentication failed" in result.stderr


def test_owner_cannot_reach_another_database():
    password = (SECRET / "mailman.password").read_text().strip()
    result = login(host("postgresql-client"), "mailman", password, db="mailmanweb")
    assert result.rc != 0
    assert "no pg_hba.conf entry" in result.stderr


def test_outsider_is_refused_by_pg_hba():
    password = (SECRET / "mailman.password").read_text().strip()
    result = login(host("postgresql-outsider"), "mailman", password)
    assert result.rc != 0
    assert 'no pg_hba.conf entry for host "172.31.14.12"' in result.stderr


def test_passwords_are_stored_as_scram_and_rules_use_scram():
    db = host("postgresql-db")
    verifiers = db.check_output(
        "runuser -u postgres -- psql -X -At -c "
        "\"SELECT rolname || ' ' || left(rolpassword, 14) FROM pg_authid "
        "WHERE rolname LIKE 'mailman%' ORDER BY 1\"")
    assert verifiers.splitlines() == ["mailman SCRAM-SHA-256$", "mailmanweb SCRAM-SHA-256$"]
    rules = db.check_output(
        "runuser -u postgres -- psql -X -At -c "
        "\"SELECT DISTINCT auth_method FROM pg_hba_file_rules WHERE type IN ('host', 'hostssl')\"")
    assert rules.split() == ["scram-sha-256"]
    listening = db.check_output("ss -Hltn 'sport = :5432'")
    assert f"{DB}:5432" in listening


def test_second_run_keeps_the_password_and_the_verifier():
    """A converge with the same data changes nothing; the verifier (salted) would change on any ALTER."""
    db = host("postgresql-db")
    query = ("runuser -u postgres -- psql -X -At -c "
             "\"SELECT rolpassword FROM pg_authid WHERE rolname = 'mailman'\"")
    before = db.check_output(query)
    password = (SECRET / "mailman.password").read_text().strip()
    assert login(host("postgresql-client"), "mailman", password).rc == 0
    assert db.check_output(query) == before


def test_a_changed_setting_is_reloaded_and_restarts_only_when_it_must():
    """conf.d changes are reloaded; the server restarts only for a setting it marks pending_restart."""
    db = host("postgresql-db")

    def query(sql: str) -> str:
        return db.check_output(f"runuser -u postgres -- psql -X -At -c {sql!r}")

    started = query("SELECT pg_postmaster_start_time()")
    try:
        slow = {"log_min_duration_statement": 250}
        reload = ansible_playbook(CONVERGE, extra={"postgresql__settings": slow})
        assert reload.returncode == 0, reload.stdout
        assert query("SHOW log_min_duration_statement") == "250ms"
        assert query("SELECT pg_postmaster_start_time()") == started  # no restart
        restart = ansible_playbook(CONVERGE, extra={"postgresql__settings": {**slow, "max_connections": 120}})
        assert restart.returncode == 0, restart.stdout
        assert query("SHOW max_connections") == "120"
        assert query("SELECT pg_postmaster_start_time()") != started
    finally:
        back = ansible_playbook(CONVERGE)
        assert back.returncode == 0, back.stdout
    assert query("SHOW max_connections") == "100"
    assert query("SELECT count(*) FROM pg_settings WHERE pending_restart") == "0"
