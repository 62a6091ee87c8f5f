"""
A pgha service (etcd, patroni, haproxy) running under the node's own
supervisord: the program definition loaded, the process running, and a
watched change answered by a reload or a restart. (On systemd hosts the
formula uses Salt's ``service.running`` instead.)

A changed program definition (a new Patroni binary, say) is applied at once
for a service that restarts on a change (``on_watch: restart``) or is not
running. For one that reloads (``on_watch: reload``: Patroni, HAProxy) it is
left pending while the service runs, since restarting Patroni on the leader
moves the leader: the comment says so, and ``pgha_service.restart`` (the
rolling ``salt-run pgha.restart``) applies it.
"""

from __future__ import annotations

__virtualname__ = "pgha_service"

# What an operator runs to apply a pending definition, by service.
RESTART_HINT = {
    "patroni": "salt-run pgha.restart what=patroni (replicas first, the leader after a switchover)",
}


def __virtual__():
    if "pgha_service.status" not in __salt__:
        return (False, "pgha_service: the pgha_service execution module is not loaded")
    return __virtualname__


def _pending_note(name: str, unit: str) -> str:
    hint = RESTART_HINT.get(name, f"salt <minion> pgha_service.restart {name}")
    return f"{unit}: definition changed; restart pending: {hint}"


def manager_running(name: str) -> dict:
    """
    This host's own supervisord runs (the lab, containers): started with its
    configuration file when it does not. Nothing to do under systemd.

    name
        A label (the configuration file, say).
    """
    ret = {"name": name, "changes": {}, "result": True, "comment": ""}
    found = __salt__["pgha_service.manager"]()
    if found["running"]:
        ret["comment"] = f"{found['manager']} is running (pid {found['pid']})"
        return ret
    if __opts__["test"]:
        ret.update(result=None, changes={"running": {"old": False, "new": True}}, comment="supervisord would be started")
        return ret
    started = __salt__["pgha_service.start_manager"]()
    # its programs started just now, from the definitions on disk: a newer one is applied at once (running)
    __context__["pgha_service.manager_started"] = started["pid"]
    ret.update(changes={"running": {"old": False, "new": True}, "pid": started["pid"]},
               comment=f"supervisord started (pid {started['pid']})")
    return ret


def running(name: str, on_watch: str = "restart") -> dict:
    """
    The service ``name`` (etcd, patroni or haproxy) runs.

    name
        The pgha service.
    on_watch
        What a change in a watched state does: ``restart`` or ``reload``
        (Patroni and HAProxy reload their configuration without a restart,
        and keep a changed program definition pending while they run).
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
    pending = __salt__["pgha_service.pending"](name)
    applied = False
    # a service the manager started moments ago in this run has served nothing yet: no need to keep it pending
    fresh = bool(__context__.get("pgha_service.manager_started"))
    if pending == "added" or (pending == "changed" and (on_watch == "restart" or not before["running"] or fresh)):
        __salt__["pgha_service.update"](name)
        applied = True
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
        ret["changes"] = {"restarted": {"old": before["pid"], "new": now["pid"]}, "definition_applied": applied}
        ret["comment"] = f"{now['service']} restarted with its new definition"
    else:
        ret["comment"] = f"{now['service']} is running (pid {now['pid']})"
        if pending == "changed" and not applied:
            ret["comment"] += "; " + _pending_note(name, now["service"])
    return ret


def mod_watch(name: str, on_watch: str = "restart", **kwargs) -> dict:
    """
    A watched state changed (the configuration or the program definition):
    reload or restart the service. A reloaded service reports a definition
    left pending in its changes.
    """
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
        if __salt__["pgha_service.pending"](name) == "changed":
            note = _pending_note(name, before["service"])
            ret["changes"]["restart_pending"] = note
            ret["comment"] += "; " + note
    else:
        now = __salt__["pgha_service.restart"](name)
        ret.update(changes={"restarted": {"old": before["pid"], "new": now["pid"]}},
                   comment=f"{before['service']} restarted")
    return ret
