"""roles/nfs_client: the fstab line of the real mount and the named stand-in, the mount point's owner,
and the unit that never starts without the share.

No kernel here can mount NFS: nfsc-fstab carries the real mount's fstab line (mount_state present)
and systemd's mount unit made of it, nothing mounted; nfsc-standin is the lab's stand-in (a tmpfs
here). The protocol itself: roles/nfs_server's scenario.
"""

from __future__ import annotations

import re

import pytest
from support import scenario

SERVER = "172.31.32.10"
SHARE = "/srv/nfs/mailman"
MOUNT_POINT = "/var/lib/mailman3"
MAILMAN = 38
PROBE = "molecule-nfs-probe.service"



@pytest.fixture(scope="module")
def fstab_host():
    return scenario.host("nfsc-fstab")


@pytest.fixture(scope="module")
def standin():
    return scenario.host("nfsc-standin")


testinfra_hosts = ["docker://nfsc-fstab"]  # once: each test names the hosts it looks at


def test_fstab_line_field_by_field(fstab_host):
    lines = [line.split() for line in fstab_host.file("/etc/fstab").content_string.splitlines()]
    entries = [fields for fields in lines if len(fields) > 1 and fields[1] == MOUNT_POINT]
    assert len(entries) == 1, entries
    source, point, fstype, opts, dump, passno = entries[0]
    assert source == f"{SERVER}:{SHARE}"
    assert point == MOUNT_POINT
    assert fstype == "nfs"
    assert opts.split(",") == ["vers=4.2", "hard", "timeo=600", "retrans=2", "_netdev", "nosuid", "nodev"]
    assert (dump, passno) == ("0", "0")
    # systemd made the mount unit from it (fstab-generator), and nothing is mounted yet.
    unit = fstab_host.run("systemctl show -P What var-lib-mailman3.mount")
    assert unit.stdout.strip() == f"{SERVER}:{SHARE}"
    assert fstab_host.run("findmnt -n %s", MOUNT_POINT).rc != 0
    assert fstab_host.package("nfs-common").is_installed


def test_standin_has_no_fstab_line_and_no_nfs_client(standin):
    assert MOUNT_POINT not in standin.file("/etc/fstab").content_string
    # The stand-in (here a tmpfs, in the lab a bind-mounted volume) is what is mounted there.
    assert standin.run("findmnt -n -o FSTYPE %s", MOUNT_POINT).stdout.strip() == "tmpfs"
    assert not standin.package("nfs-common").is_installed


@pytest.mark.parametrize("name", ["nfsc-fstab", "nfsc-standin"])
def test_mount_point_owner_and_drop_in(name):
    host = scenario.host(name)
    point = host.file(MOUNT_POINT)
    assert (point.uid, point.gid, point.mode) == (MAILMAN, MAILMAN, 0o755)
    drop_in = host.file(f"/etc/systemd/system/{PROBE}.d/mailstack-nfs.conf").content_string
    assert "Ansible managed" in drop_in
    assert re.findall(r"^\w+=.*$", drop_in, flags=re.M) == [f"RequiresMountsFor={MOUNT_POINT}"]
    show = host.run(f"systemctl show -p RequiresMountsFor -p Requires -p After {PROBE}")
    props = dict(line.split("=", 1) for line in show.stdout.splitlines())
    assert props["RequiresMountsFor"] == MOUNT_POINT
    assert "var-lib-mailman3.mount" in props["After"].split()
    # Requires= only on a mount unit systemd has a definition of (the fstab line); the stand-in is a
    # mount made outside systemd, which it orders after but cannot start.
    if name == "nfsc-fstab":
        assert "var-lib-mailman3.mount" in props["Requires"].split()


def test_unit_never_starts_without_the_share(fstab_host, standin):
    """Without the share (it cannot be mounted here) the unit refuses to start; on the stand-in,
    which is mounted, it starts."""
    start = fstab_host.run(f"timeout 120 systemctl start {PROBE}")
    assert start.rc != 0
    assert not fstab_host.service("molecule-nfs-probe").is_running
    assert standin.run(f"systemctl start {PROBE}").rc == 0
    assert standin.service("molecule-nfs-probe").is_running
    standin.run(f"systemctl stop {PROBE}")


def test_bad_settings_are_refused(fstab_host):
    from pathlib import Path  # noqa: PLC0415

    from support.molecule_playbook import ansible_playbook  # noqa: PLC0415

    run = ansible_playbook(
        Path(__file__).resolve().parents[1] / "converge.yml", extra={"nfs_client__mount": "loop"}, timeout=300
    )
    assert run.returncode != 0
    # The argument specification refuses it before any task runs, naming the variable and the value.
    out = scenario.flat(run.stdout)
    assert "nfs_client__mount" in out and "loop" in out and "bind_standin" in out, out
    assert "TASK [nfs_client : Install the NFS client" not in run.stdout
