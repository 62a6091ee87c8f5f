"""
A pgha service (etcd, patroni, haproxy) running under the node's own
supervisord: the program definition loaded, the process running, and a
watched change answered by a reload or a restart. (On systemd hosts the
formula uses Salt's ``service.running`` instead.)
"""

from __future__ import annotations

__virtualname__ = "pgha_service"


def __virtual__():
    if "pgha_service.status" not in __salt__:
        return (False, "pgha_service: the pgha_service execution module is not loaded")
    return __virtualname__


def running(name: str, on_watch: str = "restart") -> dict:
    """
    The service ``name`` (etcd, patroni or haproxy) runs.

    name
        The pgha service.
    on_watch
        What a change in a watched state does: ``restart`` or ``reload``
        (Patroni and HAProxy reload their configuration without a restart).
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if on_watch not in ("restart", "reload"):
        ret.update(result=False, comment=f"on_watch must be restart or reload (got {on_watch!r})")
        return ret
    before = __salt__["pgha_service.status"](name)
    if __opts__["test"]:
        if not before["running"]:
            ret.update(result=None, changes={"running": {"old": False, "new": True}},
                       comment=f"{before['service']} would be started")
        else:
            ret["comment"] = f"{before['service']} is running (pid {before['pid']})"
        return ret
    updated = __salt__["pgha_service.update"]()["changed"]
    now = __salt__["pgha_service.status"](name)
    if not now["running"]:
        now = __salt__["pgha_service.start"](name)
    if not now["running"]:
        ret.update(result=False, comment=f"{now['service']} did not start; see its log")
        return ret
    if not before["running"]:
        # Started with the current configuration: a watch needs no reload now.
        __context__[f"pgha_service.started.{name}"] = now["pid"]
        ret["changes"] = {"running": {"old": False, "new": True}, "pid": now["pid"]}
        ret["comment"] = f"{now['service']} started (pid {now['pid']})"
    elif before["pid"] != now["pid"]:
        ret["changes"] = {"restarted": {"old": before["pid"], "new": now["pid"]}, "program_updated": updated}
        ret["comment"] = f"{now['service']} restarted with its new definition"
    else:
        ret["comment"] = f"{now['service']} is running (pid {now['pid']})"
    return ret


def mod_watch(name: str, on_watch: str = "restart", **kwargs) -> dict:
    """A watched state changed: reload or restart the service."""
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    if __opts__["test"]:
        ret.update(result=None, comment=f"{name} would be {'reloaded' if on_watch == 'reload' else 'restarted'}")
        return ret
    before = __salt__["pgha_service.status"](name)
    if not before["running"]:
        return running(name, on_watch)
    if __context__.get(f"pgha_service.started.{name}") == before["pid"]:
        ret["comment"] = f"{before['service']} was just started with this configuration"
        return ret
    if on_watch == "reload":
        __salt__["pgha_service.reload"](name)
        ret.update(changes={"reloaded": True}, comment=f"{before['service']} reloaded its configuration")
    else:
        now = __salt__["pgha_service.restart"](name)
        ret.update(changes={"restarted": {"old": before["pid"], "new": now["pid"]}},
                   comment=f"{before['service']} restarted")
    return ret
