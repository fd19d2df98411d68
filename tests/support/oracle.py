"""The Postfix oracle: the real postconf and postfix of Debian 12 in a container, for the oracle tests.

The container is started from an image ``mailstack/postfix-oracle:<hash>`` built on first use from
``mailstack/base:bookworm`` (``apt-get install postfix``, then ``docker commit``) and reused while its
recipe and base image do not change. Without a Docker engine the oracle tests fail: they never skip.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BASE_IMAGE = os.environ.get("MAILSTACK_BASE_IMAGE", "mailstack/base:bookworm")
ORACLE_REPO = "mailstack/postfix-oracle"
# What the oracle image adds to the base image.  Its hash is part of the image tag.
ORACLE_RECIPE = """set -eu
echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postfix >/dev/null
rm -rf /var/lib/apt/lists/*
test -x /usr/sbin/postconf
"""
# Inside the container the host's temporary directory is mounted here.
ORACLE_MOUNT = "/oracle"


def _docker(*args: str, check: bool = True, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    docker = shutil.which("docker")
    if docker is None:
        pytest.fail("oracle tests need the docker CLI and a running Docker engine; docker is not installed")
    return subprocess.run(
        [docker, *args], input=stdin, capture_output=True, text=True, check=check, timeout=900
    )


def oracle_image() -> str:
    """Return the oracle image's name, building it when the cached tag is missing."""
    engine = _docker("version", "--format", "{{.Server.Version}}", check=False)
    if engine.returncode != 0:
        pytest.fail(f"oracle tests need a running Docker engine: {engine.stderr.strip()}")
    info = _docker("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE, check=False)
    if info.returncode != 0:
        pytest.fail(f"oracle tests need the base image {BASE_IMAGE} (scripts/base-image): {info.stderr}")
    digest = hashlib.sha256((info.stdout.strip() + ORACLE_RECIPE).encode()).hexdigest()[:12]
    image = f"{ORACLE_REPO}:{digest}"
    if _docker("image", "inspect", image, check=False).returncode == 0:
        return image
    builder = f"postfix-oracle-build-{uuid.uuid4().hex[:8]}"
    try:
        run = _docker("run", "-i", "--name", builder, BASE_IMAGE, "sh", stdin=ORACLE_RECIPE, check=False)
        if run.returncode != 0:
            pytest.fail(f"building {image} failed:\n{run.stdout}\n{run.stderr}")
        _docker("commit", "--change", 'CMD ["sleep", "infinity"]', builder, image)
    finally:
        _docker("rm", "-f", builder, check=False)
    return image


@dataclass
class Oracle:
    """A running container with Postfix; ``workdir`` on the host is ``/oracle`` inside it."""

    container: str
    workdir: Path

    def new_dir(self, label: str) -> tuple[Path, str]:
        """A fresh config directory: (host path, container path)."""
        name = f"{label}-{uuid.uuid4().hex[:8]}"
        host = self.workdir / name
        host.mkdir()
        return host, f"{ORACLE_MOUNT}/{name}"

    def sh(self, script: str) -> subprocess.CompletedProcess[str]:
        """Run a shell script in the container (not checked)."""
        return _docker("exec", self.container, "sh", "-c", script, check=False)

    def postconf(self, confdir: str, *flags: str) -> str:
        """``postconf -c DIR FLAGS``; fails the test on a non-zero exit or on any warning."""
        res = _docker("exec", self.container, "postconf", "-c", confdir, *flags, check=False)
        if res.returncode != 0 or res.stderr.strip():
            pytest.fail(f"postconf -c {confdir} {' '.join(flags)} said:\n{res.stderr}{res.stdout}")
        return res.stdout


@contextmanager
def running_oracle(workdir: Path) -> Iterator[Oracle]:
    """One Postfix container for the whole session, removed at the end."""
    image = oracle_image()
    workdir.chmod(0o755)
    name = f"postfix-oracle-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    _docker(
        "run",
        "-d",
        "--rm",
        "--name",
        name,
        "--network",
        "none",
        "-v",
        f"{workdir}:{ORACLE_MOUNT}",
        image,
        "sleep",
        "infinity",
    )
    try:
        yield Oracle(container=name, workdir=workdir)
    finally:
        _docker("rm", "-f", name, check=False)
