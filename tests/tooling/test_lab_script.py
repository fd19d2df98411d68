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
    (tmp_path / ".cache").mkdir()
    monkeypatch.setattr(module, "lab_containers", lambda: {"mailstack-lab-mx1": {"ID": "abc"}})
    monkeypatch.setattr(module, "inventory", lambda: ({"mx1": "172.30.0.11"}, {}))
    monkeypatch.setattr(module, "cmd_up", lambda: None)
    module.plays = []
    return module


def play_writing(lab, path: str | None):
    def play(playbook, extra):
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
