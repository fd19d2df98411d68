"""scripts/lab: what `ensure` counts as converged (no containers: the play and docker are stand-ins)."""

import importlib.machinery
import importlib.util
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "lab"


@pytest.fixture
def lab(tmp_path, monkeypatch):
    loader = importlib.machinery.SourceFileLoader("lab_script", str(SCRIPT))
    spec = importlib.util.spec_from_loader("lab_script", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    for source in module.SOURCES:
        path = tmp_path / source
        if source == "ansible.cfg":
            path.write_text("[defaults]\n")
        else:
            path.mkdir(parents=True)
            (path / "main.yml").write_text(f"# {source}\n")
    monkeypatch.setattr(module, "TOP", tmp_path)
    monkeypatch.setattr(module, "CONVERGED", tmp_path / ".cache" / "converged")
    monkeypatch.setattr(module, "CONVERGE_LOG", tmp_path / ".cache" / "lab" / "converge.log")
    (tmp_path / ".cache").mkdir()
    monkeypatch.setattr(module, "lab_containers", lambda: {"mailstack-lab-mx1": {"ID": "abc"}})
    monkeypatch.setattr(module, "inventory", lambda: ({"mx1": "172.30.0.11"}, {}))
    monkeypatch.setattr(module, "cmd_up", lambda: None)
    module.plays = []
    return module


def play_writing(lab, path: str | None):
    def play(playbook, extra, log=None):
        lab.plays.append(playbook)
        if path:
            (lab.TOP / path).parent.mkdir(parents=True, exist_ok=True)
            (lab.TOP / path).write_text(f"written by run {len(lab.plays)}\n")

    return play


def test_secrets_made_by_the_first_converge_do_not_make_ensure_converge_again(lab, monkeypatch):
    monkeypatch.setattr(lab, "cmd_play", play_writing(lab, "secret/lab/dkim/key"))
    lab.cmd_ensure()
    lab.cmd_ensure()
    assert len(lab.plays) == 1


def test_an_edit_during_the_converge_makes_ensure_converge_again(lab, monkeypatch):
    monkeypatch.setattr(lab, "cmd_play", play_writing(lab, "roles/main.yml"))
    lab.cmd_ensure()
    monkeypatch.setattr(lab, "cmd_play", play_writing(lab, None))
    lab.cmd_ensure()  # the role changed after the play read it: converge again
    lab.cmd_ensure()
    assert len(lab.plays) == 2


def test_a_changed_source_or_a_new_container_makes_ensure_converge(lab, monkeypatch):
    monkeypatch.setattr(lab, "cmd_play", play_writing(lab, None))
    lab.cmd_ensure()
    (lab.TOP / "playbooks" / "main.yml").write_text("# edited\n")
    lab.cmd_ensure()
    monkeypatch.setattr(lab, "lab_containers", lambda: {"mailstack-lab-mx1": {"ID": "new"}})
    lab.cmd_ensure()
    lab.cmd_ensure()
    assert len(lab.plays) == 3


def test_removing_a_host_that_is_not_the_labs_keeps_the_lab_converged(lab, monkeypatch):
    """The lab tests add relay4 from an extra inventory and remove it: the lab is as converged."""
    containers = {"mailstack-lab-mx1": {"ID": "abc"}}
    monkeypatch.setattr(lab, "lab_containers", lambda: dict(containers))
    monkeypatch.setattr(lab, "docker", lambda *args, **kwargs: "")
    monkeypatch.setattr(lab, "cmd_play", play_writing(lab, None))
    lab.cmd_ensure()
    containers["mailstack-lab-relay4"] = {"ID": "r4"}
    lab.cmd_destroy(["relay4"])
    del containers["mailstack-lab-relay4"]
    lab.cmd_ensure()
    assert len(lab.plays) == 1
    lab.cmd_destroy(["mx1"])  # one of the lab's own hosts: the next ensure makes and converges it
    containers["mailstack-lab-mx1"] = {"ID": "recreated"}
    lab.cmd_ensure()
    assert len(lab.plays) == 2


@pytest.fixture
def playbook(lab, monkeypatch, tmp_path):
    """The real cmd_play with a stand-in ansible-playbook that records its arguments and prints a line."""
    fake = tmp_path / "ansible-playbook"
    fake.write_text(f'#!/bin/sh\necho "$*" >> {tmp_path}/runs\necho "ok: [mx1] verbose line"\n')
    fake.chmod(0o755)
    monkeypatch.setattr(lab, "venv_bin", lambda name: str(fake))

    def runs() -> list[str]:
        path = tmp_path / "runs"
        return path.read_text().splitlines() if path.exists() else []

    return runs


def test_a_whole_converge_keeps_its_output_with_the_command_in_the_first_line(lab, playbook):
    lab.cmd_converge(["-vvv"])
    lines = lab.CONVERGE_LOG.read_text().splitlines()
    assert lines[0].startswith("# ") and " -vvv (" in lines[0], lines
    assert lines[1:] == ["ok: [mx1] verbose line"]
    assert lab.CONVERGED.exists()  # -v options change nothing that is made: still a whole converge
    # A partial converge (any other option) is not the lab's converge: no log, not converged.
    lab.cmd_converge(["--tags", "dkim_keys"])
    assert not lab.CONVERGED.exists()
    assert " -vvv (" in lab.CONVERGE_LOG.read_text().splitlines()[0]


def test_ensure_converges_again_when_its_log_is_less_verbose_than_asked(lab, playbook):
    lab.cmd_ensure()
    lab.cmd_ensure(["-vvv"])  # converged, but the log is not -vvv
    lab.cmd_ensure(["-vvv"])
    lab.cmd_ensure()  # a plain ensure takes any converged lab
    assert len(playbook()) == 2 and playbook()[1].endswith(" -vvv"), playbook()


def test_ensure_takes_only_verbosity_options(lab, playbook):
    with pytest.raises(SystemExit):
        lab.cmd_ensure(["--tags", "x"])
    assert playbook() == []
