"""
Patroni on a pgha PostgreSQL node: the cluster's members and leader, this
node's health, and bounded waits that the orchestration gates on.

It talks to the Patroni REST API of the cluster's members (addresses from the
pgha pillar, through ``pgha_config.mapdata``) and runs ``patronictl`` with the
node's own configuration file. GET requests are never authenticated; write
requests use the REST API credentials of the pillar. Needs ``patronictl`` on
the minion.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import urllib.error
import urllib.request
from typing import Any

import salt.utils.path
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "patroni"

HTTP_TIMEOUT = 3.0


def __virtual__():
    if not salt.utils.path.which("patronictl") and not salt.utils.path.which("patroni"):
        return (False, "patroni: the patroni package (patronictl) is not installed on this minion")
    return __virtualname__


# ---------------------------------------------------------------------------
# plumbing
# ---------------------------------------------------------------------------


def _map() -> dict:
    if "patroni.map" not in __context__:
        __context__["patroni.map"] = __salt__["pgha_config.mapdata"](show_secrets=True)
    return __context__["patroni.map"]


def _auth_header() -> dict:
    cfg = _map()
    token = f"{cfg['users']['restapi']}:{cfg['secrets']['restapi_password']}".encode()
    return {"Authorization": "Basic " + base64.b64encode(token).decode()}


def _member_url(member: str | None) -> str:
    cfg = _map()
    urls = cfg["restapi_urls"]
    name = member or cfg["id"]
    if name not in urls:
        raise CommandExecutionError(
            f"patroni: {name!r} is not a PostgreSQL node of the pgha pillar (members: {', '.join(sorted(urls))})"
        )
    return urls[name]


def _request(url: str, method: str = "GET", data: Any = None, auth: bool = False,
             timeout: float = HTTP_TIMEOUT) -> tuple[int, Any]:
    """One REST API call. Returns (status, body parsed as JSON when it is)."""
    body = json.dumps(data).encode() if data is not None else None
    headers = {"Content-Type": "application/json"} if body is not None else {}
    if auth:
        headers.update(_auth_header())
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (pillar URL)
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        raise CommandExecutionError(f"patroni: REST API {url} unreachable: {getattr(exc, 'reason', exc)}") from exc
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.strip()


def _api(path: str, member: str | None = None, method: str = "GET", data: Any = None,
         ok: tuple = (200,), auth: bool = False) -> Any:
    url = _member_url(member) + path
    status, body = _request(url, method=method, data=data, auth=auth)
    if status not in ok:
        raise CommandExecutionError(f"patroni: {method} {path} on {member or _map()['id']} answered {status}: {body}")
    return body


def _cluster() -> dict:
    """GET /cluster from the first member that answers (this node first)."""
    cfg = _map()
    order = [cfg["id"]] if cfg["id"] in cfg["restapi_urls"] else []
    order += [name for name in cfg["pg_nodes"] if name not in order]
    problems = []
    for name in order:
        try:
            status, body = _request(cfg["restapi_urls"][name] + "/cluster")
        except CommandExecutionError as exc:
            problems.append(str(exc))
            continue
        if status == 200 and isinstance(body, dict):
            return body
        problems.append(f"{name}: GET /cluster answered {status}")
    raise CommandExecutionError("patroni: no member answered GET /cluster: " + "; ".join(problems))


def parse_members(cluster: dict, replication: list | None = None) -> list[dict]:
    """
    Members from a /cluster document, normalised: name, role (leader,
    replica, sync_standby), state, host, port, timeline, lag (bytes, None
    when unknown) and, when the leader's replication list is given,
    ``streaming`` (the member streams from the leader).
    """
    streaming = {
        entry.get("application_name"): entry.get("state") == "streaming" for entry in (replication or [])
    }
    members = []
    for raw in cluster.get("members", []):
        lag = raw.get("lag")
        role = raw.get("role")
        members.append(
            {
                "name": raw.get("name"),
                "role": "leader" if role in ("leader", "standby_leader") else role,
                "state": raw.get("state"),
                "host": raw.get("host"),
                "port": raw.get("port"),
                "timeline": raw.get("timeline"),
                "lag": lag if isinstance(lag, int) else (0 if role in ("leader", "standby_leader") else None),
                "streaming": streaming.get(raw.get("name"), False) if replication is not None else None,
                "pending_restart": bool(raw.get("pending_restart", False)),
                "tags": raw.get("tags", {}),
            }
        )
    return sorted(members, key=lambda member: member["name"] or "")


def _leader_of(members: list[dict]) -> dict | None:
    leaders = [m for m in members if m["role"] == "leader" and m["state"] == "running"]
    return leaders[0] if len(leaders) == 1 else None


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
    cluster = _cluster()
    parsed = parse_members(cluster)
    leader = _leader_of(parsed)
    replication = None
    if leader:
        try:
            replication = _api("/patroni", member=leader["name"]).get("replication", [])
        except CommandExecutionError as exc:
            log.warning("patroni: cannot read the leader's replication list: %s", exc)
    parsed = parse_members(cluster, replication)
    if leader:
        # A replica's timeline from /cluster may lag behind on some versions;
        # the leader's own is authoritative.
        for member in parsed:
            if member["role"] == "leader" and member["timeline"] is None:
                member["timeline"] = _api("/patroni", member=member["name"]).get("timeline")
    return parsed


def leader() -> str | None:
    """
    The name of the member that leads the cluster, or None.

    CLI Example:

    .. code-block:: bash

        salt postgres01 patroni.leader
    """
    found = _leader_of(parse_members(_cluster()))
    return found["name"] if found else None


def health_problems(found: list[dict], expected: int | None = None, max_lag: int = 0) -> list[str]:
    """What keeps a member list from being healthy (empty when it is)."""
    problems = []
    leaders = [m for m in found if m["role"] == "leader"]
    if len(leaders) != 1:
        return [f"expected exactly one leader, saw {len(leaders)} ({', '.join(m['name'] for m in leaders) or 'none'})"]
    lead = leaders[0]
    if lead["state"] != "running":
        problems.append(f"leader {lead['name']} is {lead['state']}, not running")
    if expected is not None and len(found) != expected:
        problems.append(f"expected {expected} members, saw {len(found)} ({', '.join(m['name'] for m in found)})")
    for member in found:
        if member is lead:
            continue
        name = member["name"]
        if member["state"] not in ("running", "streaming"):
            problems.append(f"{name} is {member['state']}")
        if member["timeline"] != lead["timeline"]:
            problems.append(f"{name} is on timeline {member['timeline']}, the leader {lead['name']} on {lead['timeline']}")
        if member["streaming"] is False:
            problems.append(f"{name} does not stream from the leader {lead['name']}")
        if member["lag"] is None or member["lag"] > max_lag:
            problems.append(f"{name} lags {member['lag']} bytes (bound {max_lag})")
    return problems


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
            found = parse_members(_cluster())
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
            problems = health_problems(found, members, int(max_lag))
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
    status = _api("/patroni", member=name, ok=(200, 503))
    found = {m["name"]: m for m in parse_members(_cluster())}.get(name, {})
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
    answer = _api("/switchover", member=current, method="POST", data=body, ok=(200, 202), auth=True)
    return {"old_leader": current, "candidate": candidate, "message": answer}
