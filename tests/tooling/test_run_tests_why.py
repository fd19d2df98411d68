"""``scripts/run-tests why LOG``: the lines a failed step's log contributes to the end of the output.

CI shows the end of a run first, so the summary ends with the cause of each failure: these tests
give it the logs each kind of step writes and check which lines come out.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

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


# Each kind of log: (its lines, what `why` prints of it).
LOGS = {
    "pytest: its FAILED and ERROR lines": (
        ["..F.E",
         "=========================== short test summary info ===========================",
         "FAILED tests/e2e/test_relays.py::test_remove_relay - AssertionError: relay2 still listed",
         "ERROR tests/e2e/test_backends.py::test_failover - TimeoutError",
         "1 failed, 3 passed, 1 error in 812.00s"],
        ["FAILED tests/e2e/test_relays.py::test_remove_relay - AssertionError: relay2 still listed",
         "ERROR tests/e2e/test_backends.py::test_failover - TimeoutError"],
    ),
    "a child run: its own digest": (
        ["=== yamllint: FAILED (3 s)",
         "FAILED tests/unit/test_x.py::test_y - printed before the digest",
         "steps: 6 passed, 1 failed",
         "--- yamllint failed (.cache/test-logs/step-yamllint.log):",
         "    ./roles/x/tasks/main.yml:3:1: [error] syntax error"],
        ["--- yamllint failed (.cache/test-logs/step-yamllint.log):",
         "./roles/x/tasks/main.yml:3:1: [error] syntax error"],
    ),
    "linters: their findings": (
        ["E501 Line too long (111 > 110)",
         "   --> tests/unit/test_x.py:452:111",
         "    |",
         "452 |     assert x == y",
         "Found 1 error.",
         "./roles/x/tasks/main.yml:3:1: [error] syntax error: expected <block end> (syntax)",
         "roles/x/tasks/main.yml:7: name[casing]: All names should start with an uppercase letter."],
        ["E501 Line too long (111 > 110)",
         "./roles/x/tasks/main.yml:3:1: [error] syntax error: expected <block end> (syntax)",
         "roles/x/tasks/main.yml:7: name[casing]: All names should start with an uppercase letter."],
    ),
    "any other log: its last lines": (
        [f"line {n}" for n in range(10)] + ["", "lab: systemd did not come up in: mx1", ""],
        ["line 6", "line 7", "line 8", "line 9", "lab: systemd did not come up in: mx1"],
    ),
    "an empty log: says so": ([], ["(no output)"]),
}


@pytest.mark.parametrize("kind", sorted(LOGS))
def test_each_kind_of_log_gives_the_lines_that_say_why(tmp_path, kind):
    text, expected = LOGS[kind]
    assert why(tmp_path, "\n".join(text)) == expected
