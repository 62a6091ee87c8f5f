"""
The pgha Patroni cluster as states: healthy (a gate other states can
require or watch), led by a given member, and running with given dynamic
(DCS) settings. Built on the ``patroni`` execution module, run on a
PostgreSQL node.

.. code-block:: yaml

    pgha-patroni-cluster-healthy:
      patroni.cluster_healthy:
        - members: 3
        - max_lag: 0
        - timeout: 120

    postgres01:
      patroni.leader:
        - require:
          - patroni: pgha-patroni-cluster-healthy

    pgha-patroni-dynamic-config:
      patroni.dynamic_config:
        - settings:
            maximum_lag_on_failover: 1048576
            postgresql:
              parameters:
                max_connections: 200
"""

from __future__ import annotations

import glob
import os
import re

from salt.exceptions import CommandExecutionError

__virtualname__ = "patroni"


def __virtual__():
    if "patroni.wait_healthy" not in __salt__:
        return (False, "patroni state: the patroni execution module is not loaded (is patronictl installed?)")
    return __virtualname__


def _ret(name: str) -> dict:
    return {"name": name, "changes": {}, "result": True, "comment": ""}


def _healthy_comment(seen: dict) -> str:
    return (
        f"cluster healthy: {seen['leader']} leads on timeline {seen['timeline']}, "
        f"{len(seen.get('members') or [])} members streaming"
    )


def cluster_healthy(name: str, members: int | None = None, max_lag: int = 0, timeout: int = 60) -> dict:
    """
    The Patroni cluster is healthy: one running leader, ``members`` members
    in all (when given), every replica streaming from the leader on its
    timeline with at most ``max_lag`` bytes of lag. Waits up to ``timeout``
    seconds; with ``test=True`` checks once and reports. Changes nothing.

    name
        A label for the check.
    members
        The number of members expected (default: any).
    max_lag
        The lag bound of every replica, in bytes.
    timeout
        How long to wait, in seconds.
    """
    ret = _ret(name)
    if __opts__["test"]:
        try:
            seen = __salt__["patroni.wait_healthy"](members=members, max_lag=max_lag, timeout=0)
        except CommandExecutionError as exc:
            ret.update(result=None, comment=f"not healthy now; a run would wait up to {timeout} s: {exc}")
            return ret
        ret["comment"] = _healthy_comment(seen)
        return ret
    try:
        seen = __salt__["patroni.wait_healthy"](members=members, max_lag=max_lag, timeout=timeout)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret["comment"] = _healthy_comment(seen)
    return ret


def leader(name: str, timeout: int = 60) -> dict:
    """
    The member ``name`` leads the cluster; if another member leads, a
    switchover (``patroni.switchover``) hands it over, and the state waits up
    to ``timeout`` seconds for ``name`` to lead. A cluster without a running
    leader is left alone (see ``patroni.failover``).

    name
        The Patroni member (pgha minion id) that must lead.
    timeout
        How long to wait for the new leader, in seconds.
    """
    ret = _ret(name)
    try:
        current = __salt__["patroni.leader"]()
        if current == name:
            ret["comment"] = f"{name} leads the cluster"
            return ret
        known = [member["name"] for member in __salt__["patroni.members"]()]
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    if name not in known:
        ret.update(result=False, comment=f"{name} is not a member of the cluster (members: {', '.join(known) or 'none'})")
        return ret
    if current is None:
        ret.update(
            result=False,
            comment=f"the cluster has no running leader: a switchover to {name} needs one "
            f"(patroni.failover candidate={name} forces it)",
        )
        return ret
    changes = {"leader": {"old": current, "new": name}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"a switchover would move the leader from {current} to {name}")
        return ret
    try:
        __salt__["patroni.switchover"](candidate=name)
        seen = __salt__["patroni.wait_leader"](timeout=timeout, member=name)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=f"switchover from {current} to {name} failed: {exc}")
        return ret
    ret.update(changes=changes, comment=f"switched over from {current} to {name} (timeline {seen.get('timeline')})")
    return ret


def dynamic_config(name: str, settings: dict) -> dict:
    """
    The cluster's dynamic configuration in the DCS holds ``settings``
    (merged like ``patronictl edit-config``: nested maps merge, a None value
    removes a key). Changes show old and new values of the differing keys
    only. Settings that need a restart leave members with
    ``pending_restart``.

    name
        A label for the settings.
    settings
        The DCS settings, e.g. ``{"postgresql": {"parameters": {"max_connections": 200}}}``.
    """
    ret = _ret(name)
    if not isinstance(settings, dict) or not settings:
        ret.update(result=False, comment=f"settings must be a non-empty map of DCS settings (got {settings!r})")
        return ret
    try:
        predicted = __salt__["patroni.config_changes"](settings)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    if not predicted["old"] and not predicted["new"]:
        ret["comment"] = "the dynamic configuration is already in force"
        return ret
    if __opts__["test"]:
        ret.update(result=None, changes=predicted, comment="the dynamic configuration would be changed")
        return ret
    try:
        applied = __salt__["patroni.edit_config"](settings)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret.update(changes=applied if (applied["old"] or applied["new"]) else {}, comment="the dynamic configuration was changed")
    return ret


def _installed_version(venv: str) -> str | None:
    """The Patroni version pip recorded in a virtualenv (its patroni-<version>.dist-info), None without one."""
    found = glob.glob(os.path.join(venv, "lib", "python3*", "site-packages", "patroni-*.dist-info"))
    versions = [m.group(1) for m in (re.search(r"patroni-([^-]+)\.dist-info$", path) for path in found) if m]
    return versions[0] if len(versions) == 1 else None


def _run(ret: dict, cmd: list[str], env: dict | None = None) -> bool:
    """One command of an install (umask 022: what it makes is readable, not writable, by others)."""
    done = __salt__["cmd.run_all"](cmd, python_shell=False, umask="022", env=env, ignore_retcode=True)
    if done["retcode"] != 0:
        detail = (done.get("stderr") or done.get("stdout") or "").strip().splitlines()
        ret.update(result=False, comment=f"{cmd[0]} failed ({done['retcode']}): {detail[-1] if detail else 'no output'}")
        return False
    return True


def installed(name: str, version: str, requirement: str, python: str = "/usr/bin/python3",
              pip_options: list | None = None, index_url: str | None = None) -> dict:
    """
    Patroni ``version`` is installed in the virtualenv ``name``: the
    virtualenv made with ``python`` when missing (the system Python, so the
    postgres user can run it), then ``pip install <pip_options>
    <requirement>``. The version pip recorded is compared first, so a run
    that changes nothing starts no program. A Patroni already running keeps
    its code until restarted (``salt-run pgha.restart what=patroni``).

    name
        The virtualenv's directory (pgha:lookup:patroni:venv_dir).
    version
        The Patroni version wanted (pgha:patroni:version).
    requirement
        What pip installs, e.g. ``patroni[etcd3,psycopg3]==4.1.5``.
    pip_options
        pip's options (e.g. ``--no-index --find-links <dir>`` on hosts without PyPI).
    index_url
        A package index for pip, given through its environment (it may carry credentials).
    """
    ret = _ret(name)
    have = _installed_version(name)
    if have == version:
        ret["comment"] = f"Patroni {version} is installed in {name}"
        return ret
    changes = {"patroni": {"old": have, "new": version}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"Patroni {version} would be installed in {name}")
        return ret
    if not os.path.exists(os.path.join(name, "bin", "python")) and not _run(ret, [python, "-m", "venv", name]):
        return ret
    env = {"PIP_INDEX_URL": index_url} if index_url else None
    if not _run(ret, [os.path.join(name, "bin", "pip"), "install", *(pip_options or []), requirement], env):
        return ret
    now = _installed_version(name)
    if now != version:
        ret.update(result=False, comment=f"pip installed {requirement}, yet {name} records Patroni {now}")
        return ret
    ret.update(changes=changes, comment=f"Patroni {version} installed in {name}")
    return ret


def mod_watch(name: str, sfun: str | None = None, **kwargs) -> dict:
    """
    A watched state changed: ``cluster_healthy`` checks (and waits for) the
    cluster's health again.
    """
    if sfun == "cluster_healthy":
        return cluster_healthy(
            name,
            members=kwargs.get("members"),
            max_lag=kwargs.get("max_lag", 0),
            timeout=kwargs.get("timeout", 60),
        )
    ret = _ret(name)
    ret.update(result=False, comment=f"patroni.{sfun} does not react to watch; use require or onchanges")
    return ret
