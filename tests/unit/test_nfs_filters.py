"""Unit tests of plugin_utils/nfs.py (nfs_exports): the two renderings of the exports and every refusal."""

from __future__ import annotations

import re
from types import ModuleType
from typing import Any

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.mailstack.site.plugins.plugin_utils import nfs as nfs_module

E = "nfs_exports: nfs_server__exports"
OPTS = "rw,sync,root_squash,no_subtree_check,sec=sys"


@pytest.fixture(scope="module")
def nfs() -> ModuleType:
    return nfs_module


def raises(message: str) -> Any:
    return pytest.raises(AnsibleFilterError, match=f"^{re.escape(message)}")


def test_kernel_defaults(nfs: ModuleType) -> None:
    exports = [{"path": "/srv/nfs/mailman", "clients": ["192.0.2.10", "198.51.100.0/24", "2001:db8::1"]}]
    assert nfs.nfs_exports(exports, "kernel") == (
        f"/srv/nfs/mailman 192.0.2.10({OPTS}) 198.51.100.0/24({OPTS}) 2001:db8::1({OPTS})\n"
    )


def test_kernel_options(nfs: ModuleType) -> None:
    exports = [
        {"path": "/a", "clients": ["192.0.2.10/32"], "access": "ro", "squash": "all_squash", "anonuid": 38,
         "anongid": 38},
        {"path": "/b", "clients": ["192.0.2.11"], "squash": "no_root_squash", "owner": "list", "group": 38,
         "mode": "0775", "id": 7},
    ]
    assert nfs.nfs_exports(exports) == (
        "/a 192.0.2.10(ro,sync,all_squash,no_subtree_check,sec=sys,anonuid=38,anongid=38)\n"
        "/b 192.0.2.11(rw,sync,no_root_squash,no_subtree_check,sec=sys)\n"
    )


def test_empty_list_renders_nothing(nfs: ModuleType) -> None:
    assert nfs.nfs_exports([], "kernel") == ""
    assert nfs.nfs_exports([], "ganesha") == ""


def test_ganesha_blocks(nfs: ModuleType) -> None:
    exports = [
        {"path": "/srv/nfs/mailman", "clients": ["192.0.2.10", "192.0.2.11"]},
        {"path": "/srv/nfs/archive", "clients": ["198.51.100.0/24"], "access": "ro", "anonuid": 38, "id": 9},
    ]
    assert nfs.nfs_exports(exports, "ganesha", [4, 3]) == (
        "EXPORT {\n"
        "    Export_Id = 1;\n"
        '    Path = "/srv/nfs/mailman";\n'
        '    Pseudo = "/srv/nfs/mailman";\n'
        "    Protocols = 3, 4;\n"
        "    Transports = TCP;\n"
        "    Access_Type = None;\n"
        "    Squash = root_squash;\n"
        "    SecType = sys;\n"
        "    FSAL {\n"
        "        Name = VFS;\n"
        "    }\n"
        "    CLIENT {\n"
        "        Clients = 192.0.2.10, 192.0.2.11;\n"
        "        Access_Type = RW;\n"
        "    }\n"
        "}\n"
        "\n"
        "EXPORT {\n"
        "    Export_Id = 9;\n"
        '    Path = "/srv/nfs/archive";\n'
        '    Pseudo = "/srv/nfs/archive";\n'
        "    Protocols = 3, 4;\n"
        "    Transports = TCP;\n"
        "    Access_Type = None;\n"
        "    Squash = root_squash;\n"
        "    SecType = sys;\n"
        "    Anonymous_Uid = 38;\n"
        "    FSAL {\n"
        "        Name = VFS;\n"
        "    }\n"
        "    CLIENT {\n"
        "        Clients = 198.51.100.0/24;\n"
        "        Access_Type = RO;\n"
        "    }\n"
        "}\n"
    )


def test_ganesha_default_version_is_4(nfs: ModuleType) -> None:
    text = nfs.nfs_exports([{"path": "/x", "clients": ["192.0.2.1"]}], "ganesha")
    assert "    Protocols = 4;\n" in text


@pytest.mark.parametrize(
    ("exports", "message"),
    [
        ("nope", E + ": must be a list of exports, got str"),
        (["x"], E + "[0]: must be a mapping, got 'x'"),
        ([{"clients": ["192.0.2.1"]}], E + "[0].path: is required"),
        ([{"path": "/x"}], E + "[0].clients: is required"),
        (
            [{"path": "relative", "clients": ["192.0.2.1"]}],
            E + "[0].path: must be an absolute path",
        ),
        ([{"path": "/", "clients": ["192.0.2.1"]}], E + "[0].path: must be an absolute"),
        (
            [{"path": "/srv/my share", "clients": ["192.0.2.1"]}],
            E + "[0].path: must be an absolute path",
        ),
        ([{"path": "/srv/", "clients": ["192.0.2.1"]}], E + "[0].path: must be an absolute"),
        (
            [{"path": "/srv/../etc", "clients": ["192.0.2.1"]}],
            E + "[0].path: must be a normalized path (no '.' or '..'), got '/srv/../etc'",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"]}, {"path": "/a", "clients": ["192.0.2.2"]}],
            E + "[1].path: /a is exported twice",
        ),
        (
            [{"path": "/a", "clients": []}],
            E + "[0].clients: is empty: an export open to no client",
        ),
        (
            [{"path": "/a", "clients": "192.0.2.1"}],
            E + "[0].clients: must be a list of IPv4/IPv6 addresses or networks, got",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1", "list1.example.org"]}],
            E + "[0].clients[1]: must be an IPv4/IPv6 address or network (no host bits), "
            "got 'list1.example.org'",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1/24"]}],
            E + "[0].clients[0]: must be an IPv4/IPv6 address or network (no host bits), "
            "got '192.0.2.1/24'",
        ),
        (
            [{"path": "/a", "clients": ["*"]}],
            E + "[0].clients[0]: must be an IPv4/IPv6 address or network",
        ),
        (
            [{"path": "/a", "clients": [None]}],
            E + "[0].clients[0]: must be an IPv4/IPv6 address or network, got None",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1", "192.0.2.1/32"]}],
            E + "[0].clients[1]: 192.0.2.1 is listed twice",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "access": "rwx"}],
            E + "[0].access: must be one of rw, ro, got 'rwx'",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "squash": "no_squash"}],
            E + "[0].squash: must be one of root_squash, all_squash, no_root_squash, "
            "got 'no_squash'",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "options": "async"}],
            E + "[0].options: unknown field (known: path, clients,",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "anonuid": "38"}],
            E + "[0].anonuid: must be an integer from 0 to 4294967294, got '38'",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "anongid": True}],
            E + "[0].anongid: must be an integer from 0 to 4294967294, got True",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "id": 0}],
            E + "[0].id: must be an integer from 1 to 65535, got 0",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "id": 2}, {"path": "/b", "clients": ["192.0.2.1"]}],
            E + "[1].id: 2 is used by another export",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "owner": "Bad Name"}],
            E + "[0].owner: must be a user/group name or a numeric id, got 'Bad Name'",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "group": -1}],
            E + "[0].group: must be an integer from 0 to 4294967294, got -1",
        ),
        (
            [{"path": "/a", "clients": ["192.0.2.1"], "mode": 493}],
            E + "[0].mode: must be an octal mode as a string ('0755'), got 493",
        ),
    ],
)
@pytest.mark.parametrize("backend", ["kernel", "ganesha"])
def test_bad_exports_are_refused(nfs: ModuleType, backend: str, exports: Any, message: str) -> None:
    with raises(message):
        nfs.nfs_exports(exports, backend)


def test_error_names_the_variable_given(nfs: ModuleType) -> None:
    with raises("nfs_exports: molecule_exports[0].clients: is empty"):
        nfs.nfs_exports([{"path": "/a", "clients": []}], "kernel", [4], "molecule_exports")


@pytest.mark.parametrize(
    ("backend", "versions", "message"),
    [
        ("zfs", [4], "nfs_exports: backend: must be one of kernel, ganesha, got 'zfs'"),
        ("ganesha", [2], "nfs_exports: versions: must be a non-empty list of 3, 4, got [2]"),
        ("ganesha", [], "nfs_exports: versions: must be a non-empty list of 3, 4, got []"),
        ("ganesha", "4", "nfs_exports: versions: must be a non-empty list of 3, 4, got '4'"),
        ("kernel", [True], "nfs_exports: versions: must be a non-empty list of 3, 4, got [True]"),
    ],
)
def test_bad_backend_or_versions(nfs: ModuleType, backend: str, versions: Any, message: str) -> None:
    with raises(message):
        nfs.nfs_exports([{"path": "/a", "clients": ["192.0.2.1"]}], backend, versions)
