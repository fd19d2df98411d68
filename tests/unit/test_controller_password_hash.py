"""roles/rspamd/files/controller-password-hash.py: the hash is kept while the check value matches, a
new one is made otherwise, and the password reaches `rspamadm pw` at its terminal prompt, never on its
command line. A stand-in rspamadm (first on PATH) behaves as the real one does here: it reads the
password from its terminal only, after flushing what was typed before its prompt."""

import hashlib
import importlib.util
import os
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "rspamd" / "files" / "controller-password-hash.py"
spec = importlib.util.spec_from_file_location("controller_password_hash", SCRIPT)
hasher = importlib.util.module_from_spec(spec)
spec.loader.exec_module(hasher)

FAKE_RSPAMADM = f"""#!{sys.executable}
import hashlib, os, sys, termios
argv = sys.argv[1:]
if argv != ["pw", "--encrypt"]:
    sys.exit("unexpected arguments: " + repr(argv))
if not os.isatty(0):
    print("Invalid password")
    sys.exit(1)
termios.tcflush(0, termios.TCIFLUSH)  # what was typed before the prompt is lost, as with rspamadm
sys.stdout.write("Enter passphrase: ")
sys.stdout.flush()
password = sys.stdin.readline().rstrip("\\n")
print()
print("$2$salt$" + hashlib.sha256(password.encode()).hexdigest())
"""


@pytest.fixture
def rspamadm(tmp_path, monkeypatch):
    fake = tmp_path / "bin" / "rspamadm"
    fake.parent.mkdir()
    fake.write_text(FAKE_RSPAMADM)
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:{os.environ['PATH']}")
    return fake


def expected(password: str) -> str:
    return "$2$salt$" + hashlib.sha256(password.encode()).hexdigest()


def run(monkeypatch, capsys, config: Path, **env: str) -> tuple[int, str, str]:
    """main() with ENV and the controller override at CONFIG: (exit code, stdout, stderr)."""
    monkeypatch.setattr(hasher, "CONFIG", str(config))
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    try:
        hasher.main()
        code = 0
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else 1
        if isinstance(exit_.code, str):
            print(exit_.code, file=sys.stderr)
    out, err = capsys.readouterr()
    return code, out.strip(), err


def test_a_new_hash_is_typed_at_the_prompt(rspamadm, tmp_path, monkeypatch, capsys):
    password = 's3 "cr$et'
    code, out, err = run(monkeypatch, capsys, tmp_path / "none.inc", RSPAMD_PASSWORD=password,
                         RSPAMD_CHECK="")
    assert (code, out) == (0, expected(password)), err


def test_the_installed_hash_is_kept_while_the_check_value_matches(rspamadm, tmp_path, monkeypatch, capsys):
    config = tmp_path / "worker-controller.inc"
    config.write_text('password = "$2$old$hash";\n')
    check = hashlib.sha256(b"$2$old$hash" + b"pw").hexdigest()
    kept = run(monkeypatch, capsys, config, RSPAMD_PASSWORD="pw", RSPAMD_CHECK=check)
    assert kept[:2] == (0, "$2$old$hash"), kept
    # Another password (the check value no longer matches): a new hash.
    assert run(monkeypatch, capsys, config, RSPAMD_PASSWORD="other", RSPAMD_CHECK=check)[:2] == (
        0, expected("other"))


def test_no_rspamadm_exits_127_and_no_password_fails(tmp_path, monkeypatch, capsys):
    assert run(monkeypatch, capsys, tmp_path / "none.inc", RSPAMD_PASSWORD="pw", PATH=str(tmp_path))[0] == 127
    code, _, err = run(monkeypatch, capsys, tmp_path / "none.inc", RSPAMD_PASSWORD="")
    assert code == 1 and "RSPAMD_PASSWORD is empty" in err


def test_a_failed_rspamadm_is_reported(rspamadm, tmp_path, monkeypatch, capsys):
    rspamadm.write_text("#!/bin/sh\necho 'Invalid password'\nexit 1\n")
    code, _, err = run(monkeypatch, capsys, tmp_path / "none.inc", RSPAMD_PASSWORD="pw")
    assert code == 1 and "rspamadm pw --encrypt failed: Invalid password" in err


def test_installed_hash_reads_the_controller_override(tmp_path, monkeypatch):
    config = tmp_path / "worker-controller.inc"
    config.write_text('bind_socket = "localhost:11334";\npassword = "$2$a$b";\n')
    monkeypatch.setattr(hasher, "CONFIG", str(config))
    assert hasher.installed_hash() == "$2$a$b"
    monkeypatch.setattr(hasher, "CONFIG", str(tmp_path / "absent"))
    assert hasher.installed_hash() == ""
