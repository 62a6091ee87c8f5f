"""
The functional tier: the formula's code against real binaries (Salt's
salt-call rendering the real templates, a real etcd), without Salt daemons.
A missing prerequisite fails these tests with what to run: `make test`
installs them, and a test that silently skips proves nothing.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess

import pytest
from pgha_test_helpers import REPO

SALT_CALL = REPO / ".venv" / "bin" / "salt-call"
DEB_PACKAGES = ("postgresql-15", "etcd-server", "etcd-client", "haproxy", "pgbouncer", "postgresql-client", "openssl",
                "pgbackrest")
USERS = ("postgres", "haproxy", "etcd")


def missing_prerequisite() -> str | None:
    """The first thing these tests need that this host lacks, as a sentence; None when all is there."""
    if os.geteuid() != 0:
        return "the functional tests set file owners (postgres, haproxy, etcd): run them as root"
    if not SALT_CALL.exists():
        return f"{SALT_CALL} missing: run `make venv`"
    for package in DEB_PACKAGES:
        status = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True,
                                check=False).stdout
        if "install ok installed" not in status:
            return f"Debian package {package} not installed: run `make deps`"
    for user in USERS:
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"user {user} missing (made by the Debian packages): run `make deps`"
    for binary in ("etcd", "openssl", "haproxy"):
        if not shutil.which(binary) and not os.path.exists(f"/usr/sbin/{binary}"):
            return f"{binary} not found: run `make deps`"
    return None


@pytest.fixture(autouse=True, scope="session")
def prerequisites() -> None:
    problem = missing_prerequisite()
    if problem:
        pytest.fail(f"functional tests need real binaries: {problem}", pytrace=False)
