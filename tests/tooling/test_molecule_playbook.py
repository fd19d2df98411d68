"""tests/support/molecule_playbook.py: the ansible-playbook runner of the molecule scenarios' verify tests."""

import pytest
from support.molecule_playbook import ansible_playbook
from support.paths import ROOT

PLAY = """
- hosts: all
  gather_facts: false
  connection: local
  tasks:
    - ansible.builtin.debug:
        msg: >-
          value={{ value | default('unset') }}
          filter={{ ({} | mailstack.site.topology({})).single_server }}
          config={{ ansible_config_file | default('none', true) }}
          forks={{ lookup('ansible.builtin.config', 'DEFAULT_FORKS') }}
    - ansible.builtin.fail:
        msg: refused on purpose
      when: refuse | default(false) | bool
"""


@pytest.fixture
def playbook(tmp_path):
    path = tmp_path / "play.yml"
    path.write_text(PLAY)
    return path


def test_runs_with_the_project_filters_and_passes_extra_vars_as_json(playbook):
    proc = ansible_playbook(playbook, extra={"value": "x y"}, inventory="localhost,", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "value=x y filter=True" in proc.stdout


def test_a_failed_run_is_returned_not_raised(playbook):
    proc = ansible_playbook(playbook, "-e", "refuse=true", inventory="localhost,", timeout=120)
    assert proc.returncode == 2
    assert "refused on purpose" in proc.stdout


def test_without_an_inventory_it_says_to_run_through_molecule(playbook, monkeypatch):
    monkeypatch.delenv("MOLECULE_INVENTORY_FILE", raising=False)
    with pytest.raises(RuntimeError, match="run through molecule verify"):
        ansible_playbook(playbook)


def test_molecule_s_own_settings_are_kept(playbook, tmp_path, monkeypatch):
    """Inside `molecule verify` ANSIBLE_CONFIG names molecule's file: a re-run uses its settings."""
    cfg = tmp_path / "molecule-ansible.cfg"
    cfg.write_text("[defaults]\nforks = 7\ncallback_result_format = yaml\ndisplay_failed_stderr = true\n")
    monkeypatch.setenv("ANSIBLE_CONFIG", str(cfg))
    proc = ansible_playbook(playbook, inventory="localhost,", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"config={cfg} forks=7" in proc.stdout
    failed = ansible_playbook(playbook, "-e", "refuse=true", inventory="localhost,", timeout=120)
    # Results as JSON and failures on stdout, whatever the file says.
    assert '"msg": "refused on purpose"' in failed.stdout


def test_the_project_s_ansible_cfg_is_not_used(playbook, monkeypatch):
    """The Makefile exports the project's ansible.cfg (the lab's settings): a scenario's run drops it."""
    monkeypatch.setenv("ANSIBLE_CONFIG", str(ROOT / "ansible.cfg"))
    proc = ansible_playbook(playbook, inventory="localhost,", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "config=none forks=5" in proc.stdout  # Ansible's defaults
