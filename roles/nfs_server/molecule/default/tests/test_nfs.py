"""Verify roles/nfs_server over the real NFS protocol (roles/nfs_client has its own scenario).

Runs after converge/idempotence/check. nfs-server runs ganesha and exports /srv/nfs/mailman (a
tmpfs) to nfs-client-a and nfs-client-b only; nfs-outsider is in no export list. No kernel here
can mount NFS, so the clients speak the protocol with libnfs-utils (nfs-cp, nfs-ls), v4 and v3,
as Mailman's uid (the URL's ?uid=38&gid=38). nfs-kernel carries the kernel back-end (installed and
rendered, no nfsd): its exports file and exportfs's view of it are compared field by field with
the data. The last tests converge the server again with other exports (added, then removed) and
with bad ones (refused before the reload), and prove each over NFS.
"""

from __future__ import annotations

import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from support import scenario
from support.molecule_playbook import ansible_playbook
from support.scenario import flat

SCENARIO = Path(__file__).resolve().parents[1]

SERVER = "172.31.17.10"
CLIENTS = ["172.31.17.11", "172.31.17.12"]
OUTSIDER = "172.31.17.13"
SHARE = "/srv/nfs/mailman"
EXTRA = "/srv/nfs/archive"
MAILMAN = 38
GANESHA_EXPORTS = "/etc/ganesha/mailstack-exports.conf"
KERNEL_EXPORTS = "/etc/exports.d/mailstack.exports"
KERNEL_OPTIONS = {"rw", "sync", "root_squash", "no_subtree_check", "sec=sys"}
# libnfs 4.0 (Debian 12's libnfs-utils) fails NFSv4 writes of more than 3840 bytes ("Failed to
# write to dest file"; the same limit against other servers: sahlberg/libnfs-python#30); its
# v4 reads and its v3 writes have no such limit. So v4 writes are 3840 bytes, v3 writes 64 KiB.
SIZE = {4: 3840, 3: 65536}
MAILMAN_EXPORT = {"path": SHARE, "clients": CLIENTS, "owner": MAILMAN, "group": MAILMAN, "mode": "0775"}




@pytest.fixture(scope="module")
def server():
    host = scenario.host("nfs-server")
    # A (re)started ganesha is in its NFSv4 grace period (90 s) until it logs "NOT IN GRACE": v4
    # OPENs that create files fail until then. Wait for the end of the last one.
    log = "/var/log/ganesha/ganesha.log"
    for _ in range(150):
        lines = [line for line in host.file(log).content_string.splitlines() if "IN GRACE" in line]
        if lines and "NOT IN GRACE" in lines[-1]:
            return host
        time.sleep(1)
    pytest.fail("ganesha did not leave its grace period: " + "\n".join(lines[-5:]))


@pytest.fixture(scope="module")
def client_a():
    return scenario.host("nfs-client-a")


@pytest.fixture(scope="module")
def client_b():
    return scenario.host("nfs-client-b")


@pytest.fixture(scope="module")
def outsider():
    return scenario.host("nfs-outsider")


@pytest.fixture(scope="module")
def kernel():
    return scenario.host("nfs-kernel")


def _url(path: str, version: int, uid: int | None = MAILMAN) -> str:
    query = f"?version={version}" + (f"&uid={uid}&gid={uid}" if uid is not None else "")
    return f"nfs://{SERVER}{path}{query}"


def _put(host, path: str, version: int, size: int | None = None, uid: int | None = MAILMAN):
    """Write SIZE random bytes to PATH over NFS from HOST; return (command, sha256 of the bytes)."""
    local = f"/tmp/nfs-{uuid.uuid4().hex}"
    size = size or SIZE[version]
    made = host.run("head -c %s /dev/urandom > %s && sha256sum < %s", str(size), local, local)
    assert made.rc == 0, made.stderr
    cmd = host.run("nfs-cp %s %s", local, _url(path, version, uid))
    return cmd, made.stdout.split()[0]


def _get(host, path: str, version: int, uid: int | None = MAILMAN):
    """Read PATH over NFS on HOST into a local file; return (command, sha256 of what arrived)."""
    local = f"/tmp/nfs-{uuid.uuid4().hex}"
    cmd = host.run("nfs-cp %s %s", _url(path, version, uid), local)
    digest = host.run("sha256sum < %s", local).stdout.split()[0] if cmd.rc == 0 else None
    return cmd, digest


def _playbook(extra: dict | None = None) -> subprocess.CompletedProcess[str]:
    return ansible_playbook(SCENARIO / "converge.yml", "--limit", "nfs-server", extra=extra, timeout=600)



def _ganesha_pid(server) -> str:
    return server.run("systemctl show -P MainPID nfs-ganesha").stdout.strip()


# ---------------------------------------------------------------------------------------------
# The ganesha server, over NFS


def test_ganesha_runs_with_the_rendered_exports(server):
    assert server.service("nfs-ganesha").is_enabled
    assert server.service("nfs-ganesha").is_running
    exports = server.file(GANESHA_EXPORTS).content_string
    assert "Ansible managed" in exports
    assert f'Path = "{SHARE}";' in exports
    assert f"Clients = {', '.join(CLIENTS)};" in exports
    share = server.file(SHARE)
    assert (share.uid, share.gid, share.mode) == (MAILMAN, MAILMAN, 0o775)


@pytest.mark.parametrize(("written", "read"), [(4, 4), (3, 3), (3, 4), (4, 3)])
def test_written_by_one_client_read_by_the_other(server, client_a, client_b, written, read):
    name = f"{SHARE}/v{written}-v{read}-{uuid.uuid4().hex}.bin"
    put, sent = _put(client_a, name, written)
    assert put.rc == 0, put.stdout + put.stderr
    got, received = _get(client_b, name, read)
    assert got.rc == 0, got.stdout + got.stderr
    assert received == sent
    # Created through NFS with Mailman's uid: the file belongs to it on the server.
    on_disk = server.file(name)
    assert (on_disk.uid, on_disk.gid, on_disk.size) == (MAILMAN, MAILMAN, SIZE[written])


@pytest.mark.parametrize("version", [4, 3])
def test_root_is_squashed(server, client_a, version):
    """root (libnfs's default uid 0) is mapped to nobody, who may not write in Mailman's 0775 directory."""
    put, _ = _put(client_a, f"{SHARE}/root-{uuid.uuid4().hex}", version, uid=0)
    assert put.rc != 0
    assert re.search(r"ACCES|denied", put.stdout + put.stderr), put.stdout + put.stderr


@pytest.mark.parametrize("version", [4, 3])
def test_outsider_is_refused(server, client_a, outsider, version):
    name = f"{SHARE}/for-insiders-{uuid.uuid4().hex}.bin"
    put, _ = _put(client_a, name, version, size=512)
    assert put.rc == 0, put.stdout + put.stderr
    listing = outsider.run("nfs-ls %s", _url(SHARE, version))
    assert listing.rc != 0, listing.stdout
    got, _ = _get(outsider, name, version)
    assert got.rc != 0
    intruder = f"{SHARE}/intruder-{uuid.uuid4().hex}"
    put, _ = _put(outsider, intruder, version, size=512)
    assert put.rc != 0
    assert not server.file(intruder).exists


# ---------------------------------------------------------------------------------------------
# The kernel back-end: rendered, checked by exportfs, compared with the data field by field


def _parse_exports(text: str) -> dict[str, dict[str, set[str]]]:
    """exports(5) text (or `exportfs -v` output) as {path: {client: {options}}}."""
    result: dict[str, dict[str, set[str]]] = {}
    path = None
    for token in " ".join(line for line in text.splitlines() if not line.lstrip().startswith("#")).split():
        if token.startswith("/"):  # exportfs -v repeats the path for each client
            path = token
            result.setdefault(path, {})
            continue
        match = re.fullmatch(r"([^()]+)\(([^()]*)\)", token)
        assert match and path, f"unexpected token {token!r} in {text!r}"
        result[path][match.group(1)] = set(match.group(2).split(","))
    return result


def test_kernel_exports_file_matches_the_data(kernel):
    text = kernel.file(KERNEL_EXPORTS).content_string
    assert "Ansible managed" in text
    assert _parse_exports(text) == {SHARE: dict.fromkeys(CLIENTS, KERNEL_OPTIONS)}


def test_kernel_exportfs_takes_the_file(kernel):
    """exportfs (user space, /var/lib/nfs/etab) runs here even without nfsd: its view is the data's."""
    cmd = kernel.run("exportfs -ra && exportfs -v")
    assert cmd.rc == 0, cmd.stderr
    assert cmd.stderr == ""
    live = _parse_exports(cmd.stdout)
    assert set(live) == {SHARE}
    assert set(live[SHARE]) == set(CLIENTS)
    for options in live[SHARE].values():
        # exportfs -v shows the options it applied, defaults included (wdelay, hide, ...).
        assert options >= KERNEL_OPTIONS, options
        assert not options & {"ro", "async", "no_root_squash", "all_squash", "subtree_check"}, options


def test_kernel_versions(kernel):
    conf = kernel.file("/etc/nfs.conf.d/mailstack.conf").content_string
    assert re.findall(r"^vers\S*=\S+$", conf, flags=re.M) == ["vers3=y", "vers4=y"]


# ---------------------------------------------------------------------------------------------
# Changing the data changes the running server; bad data never reaches it


def test_bad_client_is_refused_before_the_reload(server):
    before = server.file(GANESHA_EXPORTS).sha256sum
    pid = _ganesha_pid(server)
    run = _playbook({"nfs_server__exports": [{"path": SHARE, "clients": [CLIENTS[0], "list2.example.org"]}]})
    assert run.returncode != 0
    assert "nfs_exports: nfs_server__exports[0].clients[1]: must be an IPv4/IPv6 address or network" in flat(
        run.stdout + run.stderr
    )
    assert server.file(GANESHA_EXPORTS).sha256sum == before
    assert _ganesha_pid(server) == pid


def test_export_on_the_overlay_root_is_refused_on_thehost(server, client_a):
    before = server.file(GANESHA_EXPORTS).sha256sum
    overlay = {"path": "/srv/on-overlay", "clients": CLIENTS}
    run = _playbook({"nfs_server__exports": [MAILMAN_EXPORT, overlay]})
    assert run.returncode != 0
    output = flat(run.stdout + run.stderr)
    assert "/srv/on-overlay is on an overlay file system, which ganesha cannot export" in output
    assert server.file(GANESHA_EXPORTS).sha256sum == before
    # The running server still serves the share.
    listing = client_a.run("nfs-ls %s", _url(SHARE, 4))
    assert listing.rc == 0, listing.stderr


def test_added_export_reaches_the_running_server(server, client_a, outsider):
    pid = _ganesha_pid(server)
    extra = {"path": EXTRA, "clients": [OUTSIDER], "owner": MAILMAN, "group": MAILMAN, "mode": "0775"}
    run = _playbook({"nfs_server__exports": [MAILMAN_EXPORT, extra]})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    assert "RUNNING HANDLER [nfs_server : Reload nfs-ganesha" in run.stdout
    for version in (4, 3):
        name = f"{EXTRA}/added-v{version}.bin"
        put, sent = _put(outsider, name, version)
        assert put.rc == 0, put.stdout + put.stderr
        got, received = _get(outsider, name, version)
        assert got.rc == 0 and received == sent
        assert server.file(name).uid == MAILMAN
        # The new export is open to its client only.
        assert client_a.run("nfs-ls %s", _url(EXTRA, version)).rc != 0
    # Reloaded, not restarted.
    assert _ganesha_pid(server) == pid

    # Back to the inventory's exports: the extra export is withdrawn from the running server.
    run = _playbook()
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr
    for version in (4, 3):
        assert outsider.run("nfs-ls %s", _url(EXTRA, version)).rc != 0
    assert client_a.run("nfs-ls %s", _url(SHARE, 4)).rc == 0
    assert _ganesha_pid(server) == pid
