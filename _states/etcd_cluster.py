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

    pgha-etcd-auth:
      etcd_cluster.auth_configured
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


def _members(ret: dict) -> list[dict] | None:
    """The cluster's members; None, with ``ret`` failed and saying why, when etcd does not answer."""
    try:
        return __salt__["etcd_cluster.members"]()
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return None


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
    found = _members(ret)
    if found is None:
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


def member_peer_url(name: str, peer_url: str) -> dict:
    """
    The cluster records ``peer_url`` as the peer URL of its member ``name``,
    which must be a member already (this never adds one). A member recorded
    with another URL is updated: after pgha:etcd:tls was switched on for a
    one-member cluster, its record still says http. With several members,
    moving peers to https needs every member listening on both schemes
    first: see docs/how-to/tls.md.

    name
        The member's name (the etcd node's minion id).
    peer_url
        Its peer URL, e.g. ``https://10.131.0.5:2380``.
    """
    ret = _ret(name)
    found = _members(ret)
    if found is None:
        return ret
    member = next((m for m in found if m["name"] == name), None)
    if member is None:
        known = ", ".join(sorted(m["name"] or m["id"] for m in found)) or "none"
        ret.update(result=False, comment=f"{name} is not a member of the etcd cluster (members: {known})")
        return ret
    if member["peer_urls"] == [peer_url]:
        ret["comment"] = f"member {name} has peer URL {peer_url}"
        return ret
    changes = {"peer_urls": {"old": member["peer_urls"], "new": [peer_url]}}
    if __opts__["test"]:
        ret.update(result=None, changes=changes, comment=f"member {name}'s peer URL would become {peer_url}")
        return ret
    try:
        __salt__["etcd_cluster.member_update"](name, peer_url)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    ret.update(changes=changes, comment=f"member {name}'s peer URL is now {peer_url}")
    return ret


def member_absent(name: str) -> dict:
    """
    The etcd cluster has no member ``name`` (a name or a hexadecimal id); it
    is removed when present.

    name
        The member's name or id.
    """
    ret = _ret(name)
    found = _members(ret)
    if found is None:
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


def auth_configured(name: str) -> dict:
    """
    etcd's access control is what pillar ``pgha:etcd:auth`` says: when
    enabled, the users root and ``pgha:users:etcd_patroni`` with their roles
    and passwords from ``pgha:secrets``, the Patroni role limited to the
    cluster's keys, and authentication on; when disabled, authentication off.
    Idempotent: passwords are checked by logging in with them. Reports what
    changed, never a password.

    Apply it once every Patroni carries the credentials (the orchestration
    does this after the PostgreSQL nodes' states): a Patroni without them
    loses etcd when authentication goes on.

    name
        A label (the orchestration uses the cluster's scope).
    """
    ret = _ret(name)
    test = bool(__opts__["test"])
    try:
        seen = __salt__["etcd_cluster.auth_ensure"](test=test)
    except CommandExecutionError as exc:
        ret.update(result=False, comment=str(exc))
        return ret
    state = "on" if seen["enabled"] else "off"
    if not seen["changes"]:
        ret["comment"] = f"etcd authentication {state}; users, role and passwords as in pillar"
        return ret
    ret["changes"] = {"etcd_auth": seen["changes"]}
    if test:
        ret.update(result=None, comment="would change: " + "; ".join(seen["changes"]))
    else:
        ret["comment"] = f"etcd authentication {state}: " + "; ".join(seen["changes"])
    return ret


def mod_watch(name: str, sfun: str | None = None, **kwargs) -> dict:
    """A watched state changed: ``healthy`` checks (and waits for) the health again."""
    if sfun == "healthy":
        return healthy(name, timeout=kwargs.get("timeout", 60))
    ret = _ret(name)
    ret.update(result=False, comment=f"etcd_cluster.{sfun} does not react to watch; use require or onchanges")
    return ret
