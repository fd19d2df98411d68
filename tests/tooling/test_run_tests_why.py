"""``scripts/run-tests why LOG``: the lines a failed step's log contributes to the end of the output.

CI shows the end of a run first, so the summary ends with the cause of each failure: these tests
give it the logs each kind of step writes and check which lines come out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def why(tmp_path: Path, text: str) -> list[str]:
    log = tmp_path / "step.log"
    log.write_text(text, encoding="utf-8")
    out = subprocess.run([str(ROOT / "scripts" / "run-tests"), "why", str(log)],
                         capture_output=True, text=True, check=True).stdout
    return [line.strip() for line in out.splitlines()]


def test_an_ansible_log_gives_the_failed_task_and_its_message(tmp_path):
    lines = why(tmp_path, "\n".join([
        "08:20:26 PLAY [Base settings on every host] ***",
        "08:20:27 TASK [common : Set the host name] ***",
        "08:20:27 ok: [mx1]",
        "08:21:40 TASK [common : Install the base packages] ***",
        "08:21:42 fatal: [relay2]: FAILED! =>",
        "08:21:42   changed: false",
        "08:21:42   msg: Failed to update apt cache: unknown reason",
        "08:21:50 TASK [common : Set the time zone] ***",
        "08:21:51 fatal: [mx1]: FAILED! => later failure",
        *[f"08:22:00 filler {n}" for n in range(20)],
    ]))
    assert lines[0].endswith("TASK [common : Install the base packages] ***")
    assert lines[1].endswith("fatal: [relay2]: FAILED! =>")
    assert lines[3].endswith("msg: Failed to update apt cache: unknown reason")
    assert len(lines) == 4  # the message ends where the next task begins; only the first failure


def test_a_pytest_log_gives_its_failed_and_error_lines(tmp_path):
    lines = why(tmp_path, "\n".join([
        "..F.E",
        "=========================== short test summary info ===========================",
        "FAILED tests/e2e/test_relays.py::test_remove_relay - AssertionError: relay2 still listed",
        "ERROR tests/e2e/test_backends.py::test_failover - TimeoutError",
        "1 failed, 3 passed, 1 error in 812.00s",
    ]))
    assert lines == [
        "FAILED tests/e2e/test_relays.py::test_remove_relay - AssertionError: relay2 still listed",
        "ERROR tests/e2e/test_backends.py::test_failover - TimeoutError",
    ]


def test_a_child_run_gives_its_own_digest(tmp_path):
    lines = why(tmp_path, "\n".join([
        "=== yamllint: FAILED (3 s)",
        "FAILED tests/unit/test_x.py::test_y - printed before the digest",
        "steps: 6 passed, 1 failed",
        "--- yamllint failed (.cache/test-logs/step-yamllint.log):",
        "    ./roles/x/tasks/main.yml:3:1: [error] syntax error",
    ]))
    assert lines == [
        "--- yamllint failed (.cache/test-logs/step-yamllint.log):",
        "./roles/x/tasks/main.yml:3:1: [error] syntax error",
    ]


def test_a_linter_log_gives_its_findings(tmp_path):
    lines = why(tmp_path, "\n".join([
        "E501 Line too long (111 > 110)",
        "   --> tests/unit/test_x.py:452:111",
        "    |",
        "452 |     assert x == y",
        "Found 1 error.",
        "./roles/x/tasks/main.yml:3:1: [error] syntax error: expected <block end> (syntax)",
        "roles/x/tasks/main.yml:7: name[casing]: All names should start with an uppercase letter.",
    ]))
    assert lines == [
        "E501 Line too long (111 > 110)",
        "./roles/x/tasks/main.yml:3:1: [error] syntax error: expected <block end> (syntax)",
        "roles/x/tasks/main.yml:7: name[casing]: All names should start with an uppercase letter.",
    ]


def test_any_other_log_gives_its_last_lines(tmp_path):
    text = [f"line {n}" for n in range(10)] + ["", "lab: systemd did not come up in: mx1", ""]
    lines = why(tmp_path, "\n".join(text))
    assert lines == ["line 6", "line 7", "line 8", "line 9", "lab: systemd did not come up in: mx1"]


def test_an_empty_log_says_so(tmp_path):
    assert why(tmp_path, "") == ["(no output)"]
