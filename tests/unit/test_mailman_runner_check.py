"""roles/mailman_core/files/mailman-runner-check.py: which runners are missing, and when Mailman is
restarted for it (a stand-in /proc and systemctl; roles/mailman_core's scenario kills a real runner)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "roles" / "mailman_core" / "files" / "mailman-runner-check.py"
spec = importlib.util.spec_from_file_location("mailman_runner_check", SCRIPT)
check = importlib.util.module_from_spec(spec)
sys.modules["mailman_runner_check"] = check
spec.loader.exec_module(check)

RUNNERS = {"bounces": 1, "in": 1, "out": 2}
MASTER = 100


def process(proc: Path, pid: int, ppid: int, args: list[str], comm: str = "python3") -> None:
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 1 0 0 0\n")
    (entry / "cmdline").write_bytes(b"\0".join(a.encode() for a in args) + b"\0")


def runner(name: str) -> list[str]:
    return ["/usr/bin/python3", "/usr/lib/mailman3/bin/runner", "-C", "/etc/mailman3/mailman.cfg",
            f"--runner={name}", "--verbose"]


@pytest.fixture
def proc(tmp_path: Path) -> Path:
    root = tmp_path / "proc"
    root.mkdir()
    process(root, MASTER, 1, ["/usr/bin/python3", "/usr/lib/mailman3/bin/master", "-C", "x.cfg"])
    process(root, 101, MASTER, runner("bounces:0:1"))
    process(root, 102, MASTER, runner("in:0:1"))
    process(root, 103, MASTER, runner("out:0:2"))
    process(root, 104, MASTER, runner("out:1:2"), comm="run (ner) x")
    (root / "self").mkdir()
    (root / "meminfo").write_text("")
    return root


def test_running_slices_are_the_masters_children_only(proc):
    process(proc, 201, 101, runner("rest:0:1"))  # a gunicorn worker: the rest runner's child
    process(proc, 301, 1, runner("digest:0:1"))  # a runner of no master of ours
    assert check.running_slices(MASTER, proc) == {("bounces", 0), ("in", 0), ("out", 0), ("out", 1)}


def test_a_dead_runner_is_the_one_missing(proc):
    for entry in (proc / "103").iterdir():
        entry.unlink()
    (proc / "103").rmdir()
    missing = check.expected_slices(RUNNERS) - check.running_slices(MASTER, proc)
    assert missing == {("out", 0)}
    assert check.describe(missing, RUNNERS) == "out:0:2"


def test_runners_file_lines_comments_and_errors():
    text = "# generated\n\nbounces 1\nout 2   # two slices\n"
    assert check.parse_runners(text) == {"bounces": 1, "out": 2}
    for bad, message in [("out two\n", "f:1: expected 'name instances'"), ("out 0\n", "expected"),
                         ("out 1 2\n", "expected"), ("in 1\nin 2\n", "f:2: runner 'in' given twice"),
                         ("# nothing\n", "f: names no runner")]:
        with pytest.raises(check.BadRunnersFile, match=message):
            check.parse_runners(bad, "f")


@pytest.fixture
def world(monkeypatch, tmp_path):
    """Stand-ins for systemctl, /proc and sleep: `unit` is what each look of systemctl finds (the last
    one stays), `running` what each look of /proc finds."""
    runners_file = tmp_path / "runners"
    runners_file.write_text("bounces 1\nin 1\nout 2\n")
    state = {"unit": [("active", MASTER)], "running": [], "calls": [], "slept": [], "masters": [],
             "file": runners_file, "history": tmp_path / "run" / "restarts"}

    def unit_state():
        return state["unit"][0] if len(state["unit"]) == 1 else state["unit"].pop(0)

    def running_slices(master):
        state["masters"].append(master)
        return state["running"].pop(0)

    def run(cmd, **kwargs):
        state["calls"].append(cmd)

    monkeypatch.setattr(check, "unit_state", unit_state)
    monkeypatch.setattr(check, "running_slices", running_slices)
    monkeypatch.setattr(check.subprocess, "run", run)
    monkeypatch.setattr(check.time, "sleep", state["slept"].append)
    monkeypatch.setattr(check.time, "time", lambda: 10000.0)
    return state


def run_check(world) -> int:
    return check.check(world["file"], 10, world["history"], max_restarts=3, window=3600)


ALL = {("bounces", 0), ("in", 0), ("out", 0), ("out", 1)}


def test_a_runner_missing_in_both_looks_restarts_mailman(world, capsys):
    world["running"] = [ALL - {("bounces", 0)}, ALL - {("bounces", 0)}]
    assert run_check(world) == 0
    assert world["slept"] == [10]
    assert world["masters"] == [MASTER, MASTER]
    assert world["calls"] == [["systemctl", "try-restart", "mailman3.service"]]
    assert "(pid 100) lost its runner(s) bounces:0:1" in capsys.readouterr().err
    assert world["history"].read_text() == "10000\n"


def test_nothing_missing_or_back_in_the_second_look_leaves_mailman_alone(world):
    world["running"] = [ALL]
    run_check(world)
    world["running"] = [ALL - {("in", 0)}, ALL]
    run_check(world)
    assert world["calls"] == []
    assert world["slept"] == [10]


def test_a_new_master_between_the_looks_is_not_restarted(world):
    world["unit"] = [("active", MASTER), ("active", MASTER + 50)]
    world["running"] = [ALL - {("in", 0)}, ALL - {("in", 0)}]
    run_check(world)
    assert world["calls"] == []


@pytest.mark.parametrize("unit", [("inactive", 0), ("activating", MASTER), ("failed", 0)])
def test_a_mailman_that_is_not_active_is_not_checked(world, unit):
    world["unit"] = [unit]
    world["running"] = [set()]
    run_check(world)
    assert world["calls"] == [] and world["slept"] == [] and world["running"] == [set()]


def test_without_the_copy_of_the_runners_file_nothing_is_checked(world, capsys):
    world["file"].unlink()
    world["running"] = [set()]
    assert run_check(world) == 0
    assert world["calls"] == [] and world["running"] == [set()]
    assert "is missing (Mailman was started before the role's drop-in copied it)" in capsys.readouterr().err


def test_restarts_are_capped_in_the_window(world, capsys):
    world["history"].parent.mkdir()
    # Two restarts in the last hour and an older one (forgotten): one more restart, then none.
    world["history"].write_text("5000\n7000\n9000\n")
    world["running"] = [ALL - {("out", 1)}] * 2
    assert run_check(world) == 0
    assert world["history"].read_text() == "7000\n9000\n10000\n"
    world["running"] = [ALL - {("out", 1)}] * 2
    assert run_check(world) == 1
    assert len(world["calls"]) == 1
    err = capsys.readouterr().err
    assert "<3>Mailman's master (pid 100) lost its runner(s) out:1:2, but this check restarted" in err
    assert "3 times in the last 3600 s already: not again" in err
    # A garbled history counts as no restart (the cap is a guard, not a reason to stop checking).
    world["history"].write_text("garbled\n")
    assert check.recent_restarts(world["history"], 10000.0, 3600) == []


def test_unit_state_reads_systemctl(monkeypatch):
    seen = []

    def run(cmd, **kwargs):
        seen.append(cmd)
        return subprocess.CompletedProcess(cmd, 0, stdout="MainPID=4642\nActiveState=active\n")

    monkeypatch.setattr(check.subprocess, "run", run)
    assert check.unit_state() == ("active", 4642)
    assert seen[0][:3] == ["systemctl", "show", "mailman3.service"]
    monkeypatch.setattr(check.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(
        cmd, 0, stdout="MainPID=0\nActiveState=inactive\n"))
    assert check.unit_state() == ("inactive", 0)


def test_a_failed_restart_is_an_error(world, capsys, monkeypatch):
    world["running"] = [ALL - {("in", 0)}] * 2

    def run(cmd, **kwargs):
        raise subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(check.subprocess, "run", run)
    argv = ["--runners", str(world["file"]), "--history", str(world["history"])]
    assert check.main(argv) == 1
    err = capsys.readouterr().err
    assert "<3>Command '['systemctl', 'try-restart', 'mailman3.service']' returned non-zero" in err


def test_validate_exit_codes(tmp_path, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("out 1\n")
    bad.write_text("out\n")
    assert check.main(["--validate", str(good)]) == 0
    assert check.main(["--validate", str(bad)]) == 1
    assert f"{bad}:1: expected 'name instances'" in capsys.readouterr().err


# The shared data's marker: only the back-end it names runs Mailman (issue 32's fencing).


@pytest.mark.parametrize(
    ("content", "owned", "reason"),
    [
        ("list1\n", True, None),
        ("list2\n", False, "the shared data belongs to list2"),
        ("", False, "the shared data belongs to nobody"),
        (None, False, "cannot be read (the shared data is not mounted"),
    ],
)
def test_owner_check_exit_codes_and_reasons(tmp_path, capsys, content, owned, reason):
    marker = tmp_path / "mailstack-active"
    if content is not None:
        marker.write_text(content)
    assert check.main(["--owner-check", "--marker", str(marker), "--host", "list1"]) == (0 if owned else 1)
    err = capsys.readouterr().err
    if owned:
        assert err == ""
    else:
        assert reason in err and "Mailman does not run here" in err, err


def test_owner_check_needs_the_marker_and_the_host(tmp_path):
    for argv in (["--owner-check"], ["--owner-check", "--host", "list1"],
                 ["--marker", str(tmp_path / "m")]):
        with pytest.raises(SystemExit) as exited:
            check.main(argv)
        assert exited.value.code == 2, argv


def fenced_check(world, marker) -> int:
    return check.check(world["file"], 10, world["history"], marker=marker, host="list1")


def test_a_running_mailman_on_another_back_end_s_data_is_stopped_and_nothing_else(world, tmp_path, capsys):
    marker = tmp_path / "mailstack-active"
    marker.write_text("list2\n")
    world["running"] = [ALL - {("bounces", 0)}] * 2  # a lost runner too: not restarted
    assert fenced_check(world, marker) == 0
    assert world["calls"] == [["systemctl", "stop", "mailman3.service"]]
    assert world["masters"] == [] and world["slept"] == []
    err = capsys.readouterr().err
    assert err.startswith("<4>the shared data belongs to list2") and "stopping mailman3.service" in err


def test_a_stopped_mailman_on_another_back_end_s_data_is_left_alone(world, tmp_path):
    marker = tmp_path / "missing-marker"
    world["unit"] = [("inactive", 0)]
    assert fenced_check(world, marker) == 0
    assert world["calls"] == []


def test_on_its_own_data_the_check_goes_on_as_before(world, tmp_path):
    marker = tmp_path / "mailstack-active"
    marker.write_text("list1\n")
    world["running"] = [ALL - {("in", 0)}, ALL - {("in", 0)}]
    assert fenced_check(world, marker) == 0
    assert world["calls"] == [["systemctl", "try-restart", "mailman3.service"]]
