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
