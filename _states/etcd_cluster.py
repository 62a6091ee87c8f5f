"""
The pgha etcd cluster (Patroni's DCS) as states: healthy (a gate), and a
member present or absent. Built on the ``etcd_cluster`` execution module
(python-etcd3).

.. code-block:: yaml

    pgha-etcd-cluster-healthy:
      etcd_cluster.healthy:
        - timeout: 60

    etcd02:
      etcd_cluster.member_present:
        - peer_url: http://10.131.0.7:2380

    etcd03:
      etcd_cluster.member_absent
"""

from __future__ import annotations

from salt.exceptions import CommandExecutionError

__virtualname__ = "etcd_cluster"


def __virtual__():
    if "etcd_cluster.health" not in __salt__:
        return (False, "etcd_cluster state: the etcd_cluster execution module is not loaded (python-etcd3 missing?)")
    return __virtualname__


def _ret(name: str) -> dict:
    return {"name": name, "changes": {}, "result": True, "comment": ""}


def _problems(seen: dict) -> str:
    return "; ".join(
        f"{member}: {entry.get('error') or 'leader ' + str(entry.get('leader'))}"
        for member, entry in sorted(seen.get("endpoints", {}).items())
    ) or "no endpoints"


def healthy(name: str, timeout: int = 60) -> dict:
    """
    Every etcd endpoint answers and all agree on one leader. Waits up to
    ``timeout`` seconds; with ``test=True`` checks once and reports.
    Changes nothing.

    name
        A label for the check.
    timeout
        How long to wait, in seconds.
    """
    ret = _ret(name)
    if __opts__["test"]:
        try:
            seen = __salt__["etcd_cluster.health"]()
        except CommandExecutionError as exc:
            ret.update(result=None, comment=f"cannot check now; a run would wait up to {timeout} s: {exc}")
            return ret
        if not seen["healthy"]:
            ret.update(result=None, comment=f"not healthy now; a run would wait up to {timeout} s: {_problems(seen)}")
            return ret
        ret["comment"] = f"etcd healthy: {len(seen['endpoints'])} endpoints agree on a leader"
        return ret
    try:
        seen = __salt__["etcd_cluster.wait_healthy"](timeout=timeout)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret["comment"] = f"etcd healthy: {len(seen['endpoints'])} endpoints agree on a leader"
    return ret


def _find(found: list[dict], name: str) -> dict | None:
    return next((member for member in found if member["name"] == name or member["id"] == str(name).lower()), None)


def member_present(name: str, peer_url: str) -> dict:
    """
    The etcd cluster has a member ``name`` with peer URL ``peer_url``; it is
    added when missing (start etcd on it afterwards with
    ``initial_cluster_state: existing``). A member added but not yet started
    has no name: it counts as present by its peer URL.

    name
        The member's name (the etcd node's minion id).
    peer_url
        Its peer URL, e.g. ``http://10.131.0.7:2380``.
    """
    ret = _ret(name)
    try:
        found = __salt__["etcd_cluster.members"]()
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    by_url = next((member for member in found if peer_url in member["peer_urls"]), None)
    by_name = _find(found, name)
    if by_name and peer_url not in by_name["peer_urls"]:
        ret.update(
            result=False,
            comment=f"member {name} has peer URLs {', '.join(by_name['peer_urls'])}, not {peer_url}: "
            "remove it first (etcd_cluster.member_absent) or correct peer_url",
        )
        return ret
    if by_url and by_url["name"] not in ("", name):
        ret.update(result=False, comment=f"peer URL {peer_url} belongs to member {by_url['name']}, not {name}")
        return ret
    if by_url:
        state = "present" if by_url["name"] else "added, not started yet"
        ret["comment"] = f"member {name} ({peer_url}) is {state}"
        return ret
    changes = {"member": {"old": None, "new": {"name": name, "peer_urls": [peer_url]}}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"member {name} ({peer_url}) would be added")
        return ret
    try:
        added = __salt__["etcd_cluster.member_add"](name, peer_url)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    changes["member"]["new"] = added
    ret.update(
        changes=changes,
        comment=f"member {name} added (id {added['id']}): start etcd on it with initial-cluster "
        f"{added.get('initial_cluster')} and initial-cluster-state existing",
    )
    return ret


def member_absent(name: str) -> dict:
    """
    The etcd cluster has no member ``name`` (a name or a hexadecimal id); it
    is removed when present.

    name
        The member's name or id.
    """
    ret = _ret(name)
    try:
        found = __salt__["etcd_cluster.members"]()
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    member = _find(found, name)
    if not member:
        ret["comment"] = f"{name} is not a member"
        return ret
    changes = {"member": {"old": member, "new": None}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"member {name} (id {member['id']}) would be removed")
        return ret
    try:
        __salt__["etcd_cluster.member_remove"](name)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret.update(changes=changes, comment=f"member {name} (id {member['id']}) removed; stop etcd on it and clear its data")
    return ret


def mod_watch(name: str, sfun: str | None = None, **kwargs) -> dict:
    """A watched state changed: ``healthy`` checks (and waits for) the health again."""
    if sfun == "healthy":
        return healthy(name, timeout=kwargs.get("timeout", 60))
    ret = _ret(name)
    ret.update(result=False, comment=f"etcd_cluster.{sfun} does not react to watch; use require or onchanges")
    return ret
