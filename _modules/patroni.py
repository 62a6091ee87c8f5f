"""
Patroni on a pgha PostgreSQL node: the cluster's members and leader, this
node's health, bounded waits that the orchestration gates on, and the
operator's toolkit (switchover, failover, restart, reload, reinitialise,
pause and resume, the dynamic configuration in the DCS and the timeline
history).

It talks to the Patroni REST API of the cluster's members (addresses from the
pgha pillar, through ``pgha_config.mapdata``) and runs ``patronictl`` with the
node's own configuration file. GET requests are never authenticated; write
requests use the REST API credentials of the pillar (``pgha:users:restapi``,
``pgha:secrets:restapi_password``). An error answer of Patroni becomes a
``CommandExecutionError`` carrying Patroni's own message. The REST client,
the member model and the health rules are the shared ones of
``_utils/pgha_cluster.py``. ``list_ctl`` needs the node's ``patronictl``
(``pgha:lookup:patroni:patronictl``).
"""

from __future__ import annotations

import json
import logging
import os
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "patroni"

# Patroni answers POST /switchover and /failover once the new leader holds the
# leader key: it polls for up to 2 * max(10, loop_wait) seconds.
SWITCH_TIMEOUT = 90.0
# POST /restart answers once PostgreSQL is up again (primary_start_timeout,
# 300 s by default, unless the request gives its own timeout).
RESTART_TIMEOUT = 330.0
CTL_TIMEOUT = 30
_NOT_PENDING = "restart conditions are not satisfied"


def __virtual__():
    # patronictl is pgha:lookup:patroni:patronictl (pgha's virtualenv by default, not on PATH); the REST API
    # functions need nothing local.
    return __virtualname__


# ---------------------------------------------------------------------------
# plumbing: the shared REST client (_utils/pgha_cluster.py)
# ---------------------------------------------------------------------------


def _map() -> dict:
    if "patroni.map" not in __context__:
        __context__["patroni.map"] = __salt__["pgha_config.mapdata"](show_secrets=True)
    return __context__["patroni.map"]


def _api():
    """The members' REST APIs, this node asked first."""
    return __utils__["pgha_cluster.patroni_api_of"](__utils__["pgha_model.cluster_of"](_map()))


def _first() -> list[str]:
    return [_map()["id"]]


def _cluster_members() -> list[dict]:
    """The members as ``GET /cluster`` lists them (no replication list)."""
    return __utils__["pgha_cluster.parse_members"](_api().cluster(first=_first()))


def _leader_of(members: list[dict]) -> dict | None:
    return __utils__["pgha_cluster.leader_of"](members)


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------


def members() -> list[dict]:
    """
    The cluster's members with role, state, timeline, lag (bytes) and whether
    each replica streams from the leader.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.members
    """
    return _api().members(first=_first())


def local() -> dict:
    """
    This host's PostgreSQL data as its files show it: Patroni's data
    directory and whether it holds a database (``initialized``: this host
    was a member of the cluster; a stopped cluster is started again on
    such hosts).

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.local
    """
    data_dir = __salt__["pgha_config.mapdata"]()["lookup"]["patroni"]["data_dir"]
    return {"data_dir": data_dir, "initialized": os.path.isfile(os.path.join(data_dir, "PG_VERSION"))}


def leader() -> str | None:
    """
    The name of the member that leads the cluster, or None.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.leader
    """
    found = _leader_of(_cluster_members())
    return found["name"] if found else None


def wait_leader(timeout: int = 120, interval: float = 1.0, member: str | None = None) -> dict:
    """
    Wait, at most ``timeout`` seconds, until the cluster has one running
    leader (``member`` when given). Fails with what was seen last.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.wait_leader timeout=60
    """
    deadline = time.monotonic() + float(timeout)
    seen = "nothing yet"
    while True:
        try:
            found = _cluster_members()
            lead = _leader_of(found)
            if lead and (member is None or lead["name"] == member):
                return {"leader": lead["name"], "timeline": lead["timeline"], "members": found}
            seen = ", ".join(f"{m['name']}={m['role']}/{m['state']}" for m in found) or "no members"
        except CommandExecutionError as exc:
            seen = str(exc)
        if time.monotonic() >= deadline:
            want = f"{member} leading" if member else "a running leader"
            raise CommandExecutionError(f"patroni: expected {want} within {timeout} s; saw: {seen}")
        time.sleep(interval)


def wait_healthy(members: int | None = None, max_lag: int = 0, timeout: int = 120,
                 interval: float = 1.0) -> dict:
    """
    Wait, at most ``timeout`` seconds, until the cluster is healthy: one
    running leader, ``members`` members in all, and every replica streaming
    from the leader on the leader's timeline with lag at most ``max_lag``
    bytes. Fails with the problems seen last.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.wait_healthy members=3 max_lag=0 timeout=120
    """
    deadline = time.monotonic() + float(timeout)
    problems = ["nothing seen yet"]
    while True:
        try:
            found = __salt__["patroni.members"]()
            problems = __utils__["pgha_cluster.health_problems"](found, members, int(max_lag))
            if not problems:
                lead = _leader_of(found)
                return {"leader": lead["name"], "timeline": lead["timeline"], "members": found}
        except CommandExecutionError as exc:
            problems = [str(exc)]
        if time.monotonic() >= deadline:
            raise CommandExecutionError(
                f"patroni: cluster not healthy after {timeout} s (expected one leader and "
                f"{members if members is not None else 'all'} members streaming on its timeline, "
                f"lag <= {max_lag}); saw: " + "; ".join(problems)
            )
        time.sleep(interval)


def health(member: str | None = None) -> dict:
    """
    One member's own view (this node by default): role, state, timeline,
    lag behind the leader (bytes), pending restart.

    CLI Example:

    .. code-block:: bash

        salt postgres02 patroni.health
    """
    cfg = _map()
    name = member or cfg["id"]
    status = _api().call(name, "/patroni", ok=(200, 503))
    found = {m["name"]: m for m in _cluster_members()}.get(name, {})
    return {
        "name": name,
        "role": found.get("role") or status.get("role"),
        "state": status.get("state"),
        "timeline": status.get("timeline"),
        "lag": found.get("lag"),
        "pending_restart": bool(status.get("pending_restart", False)),
        "paused": bool(status.get("pause", False)),
        "server_version": status.get("server_version"),
    }


def switchover(candidate: str | None = None, scheduled_at: str | None = None) -> dict:
    """
    A planned move of the leader through Patroni (``POST /switchover``), to
    ``candidate`` when given, at ``scheduled_at`` (ISO 8601) when given.
    Patroni answers once the new leader holds the leader key (or refuses:
    412 when no member qualifies, e.g. a candidate that is not the
    synchronous standby in synchronous mode).

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.switchover candidate=postgres02
    """
    current = leader()
    if not current:
        raise CommandExecutionError("patroni: switchover needs a running leader; there is none")
    body: dict = {"leader": current}
    if candidate:
        body["candidate"] = candidate
    if scheduled_at:
        body["scheduled_at"] = scheduled_at
    requested_at = time.time()
    # Any member records the request in the DCS; the leader first, unless pillar no longer lists it (scaling in).
    _, answer = _api().any_member("/switchover", method="POST", body=body, ok=(200, 202), auth=True,
                                  timeout=SWITCH_TIMEOUT, first=[current])
    return {"old_leader": current, "candidate": candidate, "message": answer, "requested_at": requested_at}


def failover(candidate: str) -> dict:
    """
    An unplanned move of the leader to ``candidate`` (``POST /failover``):
    for a cluster without a healthy leader, or to force a member that a
    switchover would refuse. The request goes to the candidate first (it
    must answer for Patroni to promote it), then to the other members.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.failover candidate=postgres02
    """
    if not candidate:
        raise CommandExecutionError("patroni: failover needs a candidate (candidate=<member>)")
    api = _api()
    api.url(candidate)
    try:
        current = leader()
    except CommandExecutionError as exc:
        log.warning("patroni: failover: cannot tell the current leader: %s", exc)
        current = None
    if current == candidate:
        raise CommandExecutionError(f"patroni: {candidate} already leads the cluster; nothing to fail over")
    _, answer = api.any_member("/failover", method="POST", body={"candidate": candidate}, ok=(200, 202),
                               auth=True, timeout=SWITCH_TIMEOUT, first=[candidate])
    return {"old_leader": current, "candidate": candidate, "message": answer}


def restart(member: str | None = None, pending_only: bool = False, timeout: int | None = None) -> dict:
    """
    Restart PostgreSQL on one member (this node by default) through Patroni
    (``POST /restart``); Patroni answers once PostgreSQL is up again. With
    ``pending_only=True`` only when the member has a restart pending (a
    changed setting that needs one): otherwise nothing happens and
    ``restarted`` is False. ``timeout`` (seconds) bounds the wait for
    PostgreSQL to start (Patroni's primary_start_timeout otherwise).

    CLI Example:

    .. code-block:: bash

        salt postgres02 patroni.restart
        salt postgres01 patroni.restart member=postgres03 pending_only=True
    """
    name = member or _map()["id"]
    body: dict = {}
    if pending_only:
        body["restart_pending"] = True
    if timeout:
        body["timeout"] = int(timeout)
    http_timeout = float(timeout) + 30 if timeout else RESTART_TIMEOUT
    status, answer = _api().raw(name, "/restart", method="POST", body=body, auth=True, timeout=http_timeout)
    text = __utils__["pgha_cluster.message"](answer)
    if pending_only and status == 503 and _NOT_PENDING in text:
        return {"member": name, "restarted": False, "message": "no restart pending"}
    __utils__["pgha_cluster.raise_for"](status, answer, "POST", "/restart", name, (200,))
    return {"member": name, "restarted": True, "message": text}


def reload(member: str | None = None) -> dict:
    """
    Make Patroni on one member (this node by default) read its configuration
    file again and apply it to PostgreSQL (``POST /reload``).

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.reload
        salt postgres01 patroni.reload member=postgres02
    """
    name = member or _map()["id"]
    answer = _api().call(name, "/reload", method="POST", body={}, ok=(200, 202), auth=True)
    return {"member": name, "message": __utils__["pgha_cluster.message"](answer)}


def reinit(member: str, force: bool = False) -> dict:
    """
    Rebuild a replica from the leader (``POST /reinitialize``): Patroni
    wipes the member's data directory and clones it again. Refused on the
    leader. ``force=True`` cancels a running task of that member first.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.reinit postgres03
    """
    if not member:
        raise CommandExecutionError("patroni: reinit needs the member to rebuild (patroni.reinit <member>)")
    answer = _api().call(member, "/reinitialize", method="POST", body={"force": bool(force)}, ok=(200,), auth=True)
    return {"member": member, "message": __utils__["pgha_cluster.message"](answer)}


def show_config() -> dict:
    """
    The cluster's dynamic configuration, as held in the DCS (``GET /config``).

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.show_config
    """
    name, config = _api().any_member("/config", first=_first())
    if not isinstance(config, dict):
        raise CommandExecutionError(f"patroni: GET /config on {name} did not answer a JSON object: {config!r:.200}")
    return config


def config_changes(settings: dict) -> dict:
    """
    What ``edit_config`` with these settings would change in the dynamic
    configuration, changing nothing: ``{"old": ..., "new": ...}`` of the
    differing keys only (nested as given; None for an absent key).

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.config_changes '{"loop_wait": 5, "postgresql": {"parameters": {"work_mem": "8MB"}}}'
    """
    if not isinstance(settings, dict) or not settings:
        raise CommandExecutionError(f"patroni: settings must be a non-empty map of DCS settings (got {settings!r})")
    return __utils__["pgha_dcs.config_diff"](show_config(), settings)


def edit_config(settings: dict) -> dict:
    """
    Change the cluster's dynamic configuration (``PATCH /config``): the keys
    given are merged into the DCS configuration, a None value removes a key.
    Returns ``{"old": ..., "new": ...}`` of the keys that changed (empty when
    nothing differed; then nothing is written). Settings that need a restart
    show as ``pending_restart`` in ``patroni.members``; see
    ``patroni.restart pending_only=True``.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.edit_config '{"postgresql": {"parameters": {"max_connections": 200}}}'
        salt postgres01 patroni.edit_config '{"maximum_lag_on_failover": 1048576, "synchronous_mode": true}'
    """
    before = show_config() if isinstance(settings, dict) and settings else None
    if before is None:
        raise CommandExecutionError(f"patroni: settings must be a non-empty map of DCS settings (got {settings!r})")
    predicted = __utils__["pgha_dcs.config_diff"](before, settings)
    if not predicted["old"] and not predicted["new"]:
        return {"old": {}, "new": {}}
    name, after = _api().any_member("/config", method="PATCH", body=settings, auth=True, first=_first())
    if not isinstance(after, dict):
        raise CommandExecutionError(f"patroni: PATCH /config on {name} did not answer a JSON object: {after!r:.200}")
    return {"old": predicted["old"], "new": __utils__["pgha_dcs.pick"](after, predicted["new"])}


def pause() -> dict:
    """
    Pause the cluster's automatic management (``PATCH /config {"pause":
    true}``): Patroni keeps running but neither fails over nor restarts
    PostgreSQL, for maintenance.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.pause
    """
    return _set_pause(True)


def resume() -> dict:
    """
    Resume the cluster's automatic management after ``pause``
    (``PATCH /config {"pause": false}``).

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.resume
    """
    return _set_pause(False)


def _set_pause(paused: bool) -> dict:
    if __utils__["pgha_dcs.is_true"](show_config().get("pause")) == paused:
        return {"paused": paused, "changed": False}
    _api().any_member("/config", method="PATCH", body={"pause": paused}, auth=True, first=_first())
    return {"paused": paused, "changed": True}


def history() -> list[dict]:
    """
    The cluster's timeline history (``GET /history``), oldest first: each
    entry's ``timeline`` (the one that ended), ``lsn`` (where it ended,
    bytes), ``reason``, ``timestamp`` and ``new_leader`` (None when Patroni
    did not record them).

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.history
    """
    name, lines = _api().any_member("/history", first=_first())
    if not isinstance(lines, list):
        raise CommandExecutionError(f"patroni: GET /history on {name} did not answer a list: {lines!r:.200}")
    keys = ("timeline", "lsn", "reason", "timestamp", "new_leader")
    entries = []
    for line in lines:
        values = list(line) if isinstance(line, (list, tuple)) else []
        entries.append({key: values[index] if index < len(values) else None for index, key in enumerate(keys)})
    return entries


def list_ctl() -> list[dict]:
    """
    The members as ``patronictl -c <config_file> list -f json`` shows them
    (read from the DCS, not the REST API): cluster, member, host, role,
    state, timeline, lag_mb, pending_restart, scheduled_restart, tags.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.list_ctl
    """
    paths = _map()["lookup"]["patroni"]
    cmd = [paths["patronictl"], "-c", paths["config_file"], "list", "-f", "json"]
    ret = __salt__["cmd.run_all"](cmd, python_shell=False, ignore_retcode=True, timeout=CTL_TIMEOUT)
    if ret["retcode"] != 0:
        detail = (ret.get("stderr") or ret.get("stdout") or "").strip().splitlines()
        raise CommandExecutionError(
            f"patroni: {' '.join(cmd)} failed ({ret['retcode']}): {detail[-1] if detail else 'no output'} "
            "(is the DCS reachable? patronictl waits for it)"
        )
    try:
        rows = json.loads(ret["stdout"])
    except ValueError as exc:
        raise CommandExecutionError(f"patroni: patronictl list printed no JSON: {ret['stdout'][:200]!r}") from exc
    if not isinstance(rows, list):
        raise CommandExecutionError(f"patroni: patronictl list printed {type(rows).__name__}, not a list")
    return [{"cluster": row.get("Cluster"), "member": row.get("Member"), "host": row.get("Host"), "role": row.get("Role"),
             "state": row.get("State"), "timeline": row.get("TL") if isinstance(row.get("TL"), int) else None,
             "lag_mb": row.get("Lag in MB") if isinstance(row.get("Lag in MB"), (int, float)) else None,
             "pending_restart": row.get("Pending restart") == "*", "scheduled_restart": row.get("Scheduled restart"),
             "tags": row.get("Tags") or {}} for row in rows]
