"""
The master's file server serves the formula and nothing else
(docs/how-to/production.md): a minion lists and fetches no pillar, test,
benchmark or lab file; and a master configured the old way (the
repository's root a file root, pillar under it) is refused by
``pgha.validate`` and by the orchestration's first gate, the files named,
before anything on a host changes.
"""

from __future__ import annotations

import json
import os
import subprocess

import yaml
from conftest import REPO

SALT_BIN = os.path.join(REPO, ".venv", "bin")
# What salt:// holds: the formula's states and templates, its modules (for the minions to sync), the highstate top.
SERVED_PREFIXES = ("pgha/", "_modules/", "_states/", "_runners/", "_utils/")


def test_a_minion_sees_the_formula_only(salt_master, orchestration):
    ret = salt_master.salt_cli(timeout=120).run("cp.list_master", minion_tgt="haproxy")
    assert ret.returncode == 0, ret.stdout
    files = ret.data
    assert "pgha/init.sls" in files and "_modules/patroni.py" in files and "_utils/pgha_cluster.py" in files
    assert [f for f in files if f != "top.sls" and not f.startswith(SERVED_PREFIXES)] == []
    for name in ("pillar/top.sls", "pillar/pgha/lab.sls", "tests/conftest.py", "bench/__main__.py",
                 "lab/config.py", "README.md"):
        ret = salt_master.salt_cli(timeout=120).run("cp.get_file_str", f"salt://{name}", minion_tgt="haproxy")
        assert ret.data is False, (name, ret.stdout[:200])


def _old_layout(salt_master, test_root: str) -> str:
    """
    A configuration of the test master as the README once documented it: a checkout's root a file root too, with
    the pillar under it (here a checkout of links: the tests' pillar). Only file_roots differs: the same
    master, keys and caches.
    """
    conf_dir = os.path.join(test_root, "old-layout")
    checkout = os.path.join(conf_dir, "checkout")
    os.makedirs(checkout, exist_ok=True)
    if not os.path.islink(os.path.join(checkout, "pillar")):
        os.symlink(os.path.join(test_root, "pillar"), os.path.join(checkout, "pillar"))
    with open(os.path.join(salt_master.config_dir, "master"), encoding="utf-8") as handle:
        options = yaml.safe_load(handle)
    options["file_roots"] = {"base": [os.path.join(REPO, "salt"), checkout]}
    with open(os.path.join(conf_dir, "master"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(options, handle)
    return conf_dir


def test_a_master_serving_the_pillar_is_refused(salt_master, orchestration, test_root):
    conf_dir = _old_layout(salt_master, test_root)
    pillar = os.path.join(test_root, "pillar")

    def salt_run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([os.path.join(SALT_BIN, "salt-run"), "-c", conf_dir, *args, "--out=json"],
                              capture_output=True, text=True, timeout=600, check=False)

    ret = salt_run("pgha.validate")
    assert ret.returncode != 0
    errors = json.loads(ret.stdout)["errors"]
    [line] = [error for error in errors if "file server" in error]
    assert f"under the pillar root {pillar}" in line
    served = os.path.join(test_root, "old-layout", "checkout", "pillar", "pgha_secrets.yaml")
    assert f": salt://pillar/pgha_secrets.yaml ({served}, holds secrets)" in line, line

    ret = salt_run("state.orchestrate", "pgha")
    assert ret.returncode != 0
    states = {key.split("_|-")[1]: value for value in json.loads(ret.stdout)["data"].values() for key, value in
              value.items()}
    assert states["pgha-orch-pillar-valid"]["result"] is False
    assert "pgha_secrets.yaml" in json.dumps(states["pgha-orch-pillar-valid"])
    # the first gate stopped it: no stage after it ran
    assert sorted(states) == ["pgha-orch-pillar-valid", "pgha-orch-sync-minions"]
    # the running master's own layout still passes (its cached file lists renewed first)
    assert salt_master.salt_run_cli(timeout=120).run("fileserver.clear_file_list_cache").returncode == 0
    ret = salt_master.salt_run_cli(timeout=600).run("pgha.validate", _timeout=600)
    assert ret.returncode == 0, ret.stdout
