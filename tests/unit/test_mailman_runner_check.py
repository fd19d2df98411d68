"""roles/mailman_core/files/mailman-runner-check.py: which runners are missing, and when Mailman is
restarted for it (a stand-in /proc and systemctl; molecule/web kills a real runner)."""

from __future__ import annotations

import importlib.util
import os
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
    """Stand-ins for systemctl, /proc and sleep; `looks` is what each look finds."""
    runners_file = tmp_path / "runners"
    runners_file.write_text("bounces 1\nin 1\nout 2\n")
    os.utime(runners_file, (1000, 1000))
    state = {"unit": [("active", MASTER, 2000.0)], "running": [], "calls": [], "slept": [], "masters": []}

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
    state["file"] = runners_file
    return state


ALL = {("bounces", 0), ("in", 0), ("out", 0), ("out", 1)}


def test_a_runner_missing_in_both_looks_restarts_mailman(world, capsys):
    world["running"] = [ALL - {("bounces", 0)}, ALL - {("bounces", 0)}]
    assert check.check(world["file"], 10) == 0
    assert world["slept"] == [10]
    assert world["calls"] == [["systemctl", "restart", "mailman3.service"]]
    assert world["masters"] == [MASTER, MASTER]
    assert "(pid 100) lost its runner(s) bounces:0:1" in capsys.readouterr().err


def test_nothing_missing_or_back_in_the_second_look_leaves_mailman_alone(world):
    world["running"] = [ALL]
    check.check(world["file"], 10)
    world["running"] = [ALL - {("in", 0)}, ALL]
    check.check(world["file"], 10)
    assert world["calls"] == []
    assert world["slept"] == [10]


def test_a_new_master_between_the_looks_is_not_restarted(world):
    world["unit"] = [("active", MASTER, 2000.0), ("active", MASTER + 50, 2005.0)]
    world["running"] = [ALL - {("in", 0)}, ALL - {("in", 0)}]
    check.check(world["file"], 10)
    assert world["calls"] == []


@pytest.mark.parametrize(
    "unit", [("inactive", 0, 0.0), ("activating", MASTER, 0.0), ("active", MASTER, 999.0)])
def test_an_inactive_mailman_or_a_configuration_newer_than_the_master_is_not_checked(world, unit, capsys):
    world["unit"] = [unit]
    world["running"] = [set()]
    check.check(world["file"], 10)
    assert world["calls"] == [] and world["slept"] == []
    assert world["running"] == [set()]
    if unit[0] == "active":
        assert "changed after mailman3.service started" in capsys.readouterr().err


def test_validate_exit_codes(tmp_path, capsys):
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.write_text("out 1\n")
    bad.write_text("out\n")
    assert check.main(["--validate", str(good)]) == 0
    assert check.main(["--validate", str(bad)]) == 1
    assert f"{bad}:1: expected 'name instances'" in capsys.readouterr().err
    assert check.main(["--runners", str(tmp_path / "missing")]) == 1


def test_a_runners_file_written_in_the_second_the_master_started_is_checked(world):
    os.utime(world["file"], (1000.7, 1000.7))
    world["unit"] = [("active", MASTER, 1000.0)]
    world["running"] = [ALL]
    check.check(world["file"], 10)
    assert world["running"] == [] and world["calls"] == []
