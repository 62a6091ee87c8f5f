"""
The etcd cluster that pgha's Patroni uses as its DCS: its members, the
health of each endpoint, and membership changes (add, remove), through
python-etcd3 (the v3 gRPC API).

Endpoints come from the pgha pillar (``pgha_config.mapdata``). Needs the PyPI
package ``etcd3`` in Salt's Python; with protobuf 4 and later it runs the
pure-Python protobuf implementation, selected here before protobuf loads.
"""

from __future__ import annotations

import logging
import os
import re
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "etcd_cluster"

# etcd3's generated code predates protobuf 4: keep protobuf on its pure-Python
# implementation, which still loads it. Must happen before protobuf is imported.
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
try:
    import etcd3
    import grpc
    from etcd3 import etcdrpc
    from etcd3.etcdrpc import auth_pb2

    HAS_ETCD3 = True
    IMPORT_ERROR = ""
except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
    HAS_ETCD3 = False
    IMPORT_ERROR = str(exc).splitlines()[0] if str(exc) else type(exc).__name__

TIMEOUT, LOGIN_TIMEOUT = 3, 10  # a login is a raft request (etcd fsyncs it): seconds when etcd's disk is busy
_PEER_URL = re.compile(r"^https?://[^/\s:]+(:\d+)?$|^https?://\[[0-9A-Fa-f:.]+\](:\d+)?$")


def __virtual__():
    if not HAS_ETCD3:
        return (False, f"etcd_cluster: python-etcd3 (PyPI etcd3) cannot be imported: {IMPORT_ERROR}")
    return __virtualname__


def _settings() -> dict:
    """Endpoints, TLS and credentials of the cluster's etcd, from the pgha pillar."""
    cfg = __salt__["pgha_config.mapdata"](show_secrets=True)
    etcd = cfg["etcd"]
    port = etcd["client_port"]
    scope = cfg["cluster"]["scope"]
    return {
        "endpoints": [(name, cfg["nodes"][name]["address"], port) for name in cfg["etcd_nodes"]],
        "ca_file": etcd["tls"]["ca_file"] if etcd["tls"]["enabled"] else None,
        "auth": bool(etcd["auth"]["enabled"]),
        "root_password": cfg["secrets"].get("etcd_root_password") or "",
        "user": cfg["users"]["etcd_patroni"],
        "user_password": cfg["secrets"].get("etcd_patroni_password") or "",
        "prefix": cfg["cluster"]["namespace"] + scope + "/",
        "role": f"pgha-{scope}",
        # the cluster's lock (the master's commands): one key, its own user and role
        "lock_user": cfg["users"]["etcd_lock"],
        "lock_password": cfg["secrets"].get("etcd_lock_password") or "",
        "lock_role": f"pgha-{scope}-lock",
        "lock_key": cfg["cluster"]["namespace"] + scope + "/pgha-lock",
    }


def _client(host: str, port: int, settings: dict | None = None, admin: bool = False):
    """
    A client of one endpoint: over TLS when pgha:etcd:tls is on; with the root
    user's token when ``admin`` and authentication is on in etcd.
    """
    settings = settings or _settings()
    client = etcd3.client(host=host, port=port, timeout=TIMEOUT, ca_cert=settings["ca_file"])
    if admin and settings["auth"]:
        try:
            token = _authenticate(client, "root", settings["root_password"], "pgha:secrets:etcd_root_password")
        except Exception:
            client.close()
            raise
        if token:
            client.metadata = (("token", token),)
    return client


def _authenticate(client, user: str, password: str, key: str) -> str | None:
    """
    A token for ``user``; None when etcd has authentication off. A refused
    password is an error naming the pillar key that holds it.
    """
    try:
        return etcdrpc.AuthStub(client.channel).Authenticate(
            etcdrpc.AuthenticateRequest(name=user, password=password), LOGIN_TIMEOUT
        ).token
    except grpc.RpcError as exc:
        if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and "not enabled" in (exc.details() or ""):
            return None
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT and "authentication failed" in (exc.details() or ""):
            raise CommandExecutionError(
                f"etcd_cluster: etcd refuses the password of its user {user} ({key}); "
                f"set {key} to the password etcd has, or change it in etcd (etcdctl user passwd {user})"
            ) from None
        raise


def _describe(member, name: str | None = None) -> dict:
    return {
        "id": f"{member.id:x}",
        "name": member.name or name or "",
        "peer_urls": list(member.peer_urls),
        "client_urls": list(member.client_urls),
    }


def _error_text(exc: Exception) -> str:
    """
    etcd's own words for a failed call. python-etcd3 re-raises gRPC errors as
    its own exception classes without their text; the gRPC error it replaced
    still carries etcd's message.
    """
    for candidate in (exc, exc.__cause__, exc.__context__):
        details = getattr(candidate, "details", None)
        if callable(details):
            code = candidate.code() if callable(getattr(candidate, "code", None)) else None
            text = details() or ""
            return f"{text} ({getattr(code, 'name', code)})" if code is not None else text
    return str(exc) or type(exc).__name__


def _unreachable(exc: Exception) -> bool:
    if HAS_ETCD3 and isinstance(exc, (etcd3.exceptions.ConnectionFailedError, etcd3.exceptions.ConnectionTimeoutError)):
        return True
    code = getattr(exc, "code", None)
    name = getattr(code(), "name", "") if callable(code) else ""
    return name in ("UNAVAILABLE", "DEADLINE_EXCEEDED")


def _with_client(action: str, call):
    """
    Run ``call(client)`` against the first endpoint that answers; an answer
    of etcd that refuses the change is raised at once, not retried.
    """
    problems = []
    settings = _settings()
    for name, host, port in settings["endpoints"]:
        try:
            client = _client(host, port, settings, admin=True)
        except CommandExecutionError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            if not _unreachable(exc):
                raise CommandExecutionError(f"etcd_cluster: {action}: {name} ({host}:{port}): {_error_text(exc)}") from exc
            problems.append(f"{name} ({host}:{port}): {_error_text(exc)}")
            continue
        try:
            return call(client)
        except CommandExecutionError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            if _unreachable(exc):
                problems.append(f"{name} ({host}:{port}): {_error_text(exc)}")
                continue
            raise CommandExecutionError(f"etcd_cluster: {action} refused by {name} ({host}:{port}): {_error_text(exc)}") from exc
        finally:
            client.close()
    raise CommandExecutionError(f"etcd_cluster: {action}: no endpoint answered: " + "; ".join(problems))


def members() -> list[dict]:
    """
    The etcd cluster's members: id, name, peer and client URLs, as the first
    reachable endpoint reports them.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.members
    """
    problems = []
    settings = _settings()
    for name, host, port in settings["endpoints"]:
        try:
            client = _client(host, port, settings)
            try:
                return sorted((_describe(member) for member in client.members), key=lambda member: member["name"])
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
            problems.append(f"{name} ({host}:{port}): {_error_text(exc)}")
    raise CommandExecutionError("etcd_cluster: no endpoint answered: " + "; ".join(problems))


def _names(names: str | list | None) -> list[str] | None:
    """``names`` as a list (a comma-separated string from the command line), None for all."""
    if names is None or names == "":
        return None
    return [name.strip() for name in names.split(",")] if isinstance(names, str) else [str(name) for name in names]


def health(names: str | list | None = None) -> dict:
    """
    Each endpoint's health: reachable, whether it is the raft leader, raft
    term and index, database size, version; ``healthy`` for the whole
    (every endpoint reachable and all agreeing on one leader); ``tls``: the
    endpoints were reached over https, verified against the CA. ``names``
    (etcd nodes of pillar, a list or comma-separated) checks only those:
    the members a cluster has while others are still to join.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.health
        salt etcd etcd_cluster.health names=etcd,postgres01
    """
    endpoints = {}
    leaders = set()
    settings = _settings()
    wanted = _names(names)
    if wanted is not None:
        unknown = sorted(set(wanted) - {name for name, _, _ in settings["endpoints"]})
        if unknown or not wanted:
            raise CommandExecutionError(f"etcd_cluster: names must be etcd nodes of pillar (not: {', '.join(unknown)})")
        settings["endpoints"] = [endpoint for endpoint in settings["endpoints"] if endpoint[0] in wanted]
    for name, host, port in settings["endpoints"]:
        entry: dict = {"endpoint": f"{host}:{port}", "reachable": False}
        try:
            client = _client(host, port, settings)
            try:
                status = client.status()
                entry.update(
                    reachable=True,
                    leader=status.leader.name if status.leader else None,
                    is_leader=bool(status.leader and status.leader.name == name),
                    raft_term=status.raft_term,
                    raft_index=status.raft_index,
                    db_size=status.db_size,
                    version=status.version,
                )
                leaders.add(entry["leader"])
            finally:
                client.close()
        except Exception as exc:  # noqa: BLE001  # pylint: disable=broad-except
            entry["error"] = str(exc) or type(exc).__name__
        endpoints[name] = entry
    healthy = bool(endpoints) and all(e["reachable"] for e in endpoints.values()) and len(leaders) == 1 and None not in leaders
    return {"healthy": healthy, "tls": settings["ca_file"] is not None, "endpoints": endpoints}


def wait_healthy(timeout: int = 60, interval: float = 1.0, names: str | list | None = None) -> dict:
    """
    Wait, at most ``timeout`` seconds, until every etcd endpoint (or those
    of ``names``, as in ``health``) answers and they agree on a leader.
    Fails with what was seen last.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.wait_healthy timeout=60
    """
    deadline = time.monotonic() + float(timeout)
    while True:
        seen = health(names)
        if seen["healthy"]:
            return seen
        if time.monotonic() >= deadline:
            detail = "; ".join(
                f"{name}: {e.get('error') or ('leader ' + str(e.get('leader')))}" for name, e in seen["endpoints"].items()
            )
            raise CommandExecutionError(
                f"etcd_cluster: expected every endpoint reachable with one leader within {timeout} s; saw: {detail}"
            )
        time.sleep(interval)


def member_add(name: str, peer_url: str) -> dict:
    """
    Add a member to the etcd cluster (``MemberAdd``), announced by its peer
    URL; then start etcd on it with ``name``, the returned
    ``initial_cluster`` and ``initial_cluster_state: existing``. Fails when
    the name or the peer URL is already a member's.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.member_add etcd02 http://10.131.0.7:2380
    """
    if not name or not isinstance(name, str):
        raise CommandExecutionError("etcd_cluster: member_add needs the new member's name")
    if not isinstance(peer_url, str) or not _PEER_URL.match(peer_url):
        raise CommandExecutionError(
            f"etcd_cluster: peer_url must be a URL such as http://10.131.0.7:2380 (got {peer_url!r})"
        )

    def add(client) -> dict:
        current = [_describe(member) for member in client.members]
        for member in current:
            if member["name"] == name or peer_url in member["peer_urls"]:
                raise CommandExecutionError(
                    f"etcd_cluster: {name} ({peer_url}) is already a member: id {member['id']}, "
                    f"name {member['name'] or '(not started)'}, peer URLs {', '.join(member['peer_urls'])}"
                )
        added = _describe(client.add_member([peer_url]), name)
        peers = [(member["name"], url) for member in current for url in member["peer_urls"] if member["name"]]
        peers.append((name, peer_url))
        added["initial_cluster"] = ",".join(f"{peer}={url}" for peer, url in peers)
        added["initial_cluster_state"] = "existing"
        return added

    return _with_client(f"adding member {name} ({peer_url})", add)


def member_remove(name: str) -> dict:
    """
    Remove a member from the etcd cluster (``MemberRemove``), named by its
    name or its hexadecimal id. Returns the member removed. Stop etcd on it
    and clear its data directory before it ever joins again.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.member_remove etcd02
    """
    if not name:
        raise CommandExecutionError("etcd_cluster: member_remove needs the member's name or hex id")

    def remove(client) -> dict:
        current = list(client.members)
        found = [member for member in current if member.name == name or f"{member.id:x}" == str(name).lower()]
        if not found:
            known = ", ".join(sorted(member.name or f"{member.id:x}" for member in current))
            raise CommandExecutionError(f"etcd_cluster: no member named {name} (members: {known or 'none'})")
        target = found[0]
        client.remove_member(target.id)
        return _describe(target)

    return _with_client(f"removing member {name}", remove)


def member_update(name: str, peer_url: str) -> dict:
    """
    Change the peer URL that the cluster records for member ``name``
    (``MemberUpdate``), e.g. after its peers moved to https. The member must
    already listen there. Returns the member as it was.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.member_update etcd https://10.131.0.5:2380
    """
    if not isinstance(peer_url, str) or not _PEER_URL.match(peer_url):
        raise CommandExecutionError(
            f"etcd_cluster: peer_url must be a URL such as https://10.131.0.7:2380 (got {peer_url!r})"
        )

    def update(client) -> dict:
        current = list(client.members)
        found = [member for member in current if member.name == name]
        if not found:
            known = ", ".join(sorted(member.name or f"{member.id:x}" for member in current))
            raise CommandExecutionError(f"etcd_cluster: no member named {name} (members: {known or 'none'})")
        client.update_member(found[0].id, [peer_url])
        return _describe(found[0])

    return _with_client(f"updating member {name} to {peer_url}", update)


# ---------------------------------------------------------------------------
# authentication: root, the Patroni user and its role
# ---------------------------------------------------------------------------


def auth_ensure(test: bool = False) -> dict:
    """
    Make etcd's access control what pillar ``pgha:etcd:auth`` says. When
    enabled: the user root (role root) with ``pgha:secrets:etcd_root_password``,
    a role ``pgha-<scope>`` that may read and write ``<namespace><scope>/``
    and nothing else, the user ``pgha:users:etcd_patroni`` with that role and
    ``pgha:secrets:etcd_patroni_password``, a role ``pgha-<scope>-lock``
    that may read and write the cluster's lock key only, the user
    ``pgha:users:etcd_lock`` with it and ``pgha:secrets:etcd_lock_password``,
    then authentication switched on.
    Passwords are checked by logging in with them and changed when etcd
    refuses them. When disabled: authentication switched off.

    Returns ``{"enabled": bool, "changes": [...]}`` (with ``test=True``, the
    changes that would be made). Patroni must carry the credentials before
    authentication goes on: the orchestration runs this after the PostgreSQL
    nodes' states.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.auth_ensure test=True
    """
    settings = _settings()
    converge = __utils__["pgha_etcd_auth.converge"]
    return _with_client("configuring authentication",
                        lambda client: converge(client, settings, bool(test), _authenticate))


def auth_status() -> dict:
    """
    etcd's access control: whether authentication is on, its users with their
    roles and its roles with their key ranges (never a password). Needs the
    root password from pillar once authentication is on.

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.auth_status
    """
    settings = _settings()

    def read(client) -> dict:
        stub = etcdrpc.AuthStub(client.channel)
        metadata = client.metadata
        enabled = bool(metadata)
        if not enabled and settings["auth"] is False:
            # Authentication may be on although the pillar says off.
            try:
                stub.UserList(etcdrpc.AuthUserListRequest(), TIMEOUT)
            except grpc.RpcError as exc:
                if "user name is empty" in (exc.details() or ""):
                    return {"enabled": True, "users": None, "roles": None,
                            "note": "authentication is on in etcd; pgha:etcd:auth:enabled is false"}
                raise
        users = {
            name: sorted(stub.UserGet(etcdrpc.AuthUserGetRequest(name=name), TIMEOUT, metadata=metadata).roles)
            for name in stub.UserList(etcdrpc.AuthUserListRequest(), TIMEOUT, metadata=metadata).users
        }
        roles = {}
        for name in stub.RoleList(etcdrpc.AuthRoleListRequest(), TIMEOUT, metadata=metadata).roles:
            perms = stub.RoleGet(etcdrpc.AuthRoleGetRequest(role=name), TIMEOUT, metadata=metadata).perm
            roles[name] = [
                {
                    "type": auth_pb2.Permission.Type.Name(p.permType),
                    "key": p.key.decode(errors="replace"),
                    "range_end": p.range_end.decode(errors="replace"),
                }
                for p in perms
            ]
        return {"enabled": enabled, "users": users, "roles": roles}

    return _with_client("reading authentication", read)


def local() -> dict:
    """
    This host's etcd member as its files show it: the data directory and
    whether it holds member data (``bootstrapped``: etcd has started here
    and will not read its initial settings again).

    CLI Example:

    .. code-block:: bash

        salt etcd etcd_cluster.local
    """
    data_dir = __salt__["pgha_config.mapdata"]()["lookup"]["etcd"]["data_dir"]
    return {"data_dir": data_dir, "bootstrapped": os.path.isdir(os.path.join(data_dir, "member"))}


def retire_local(purge: bool = False) -> dict:
    """
    After this host's member was removed from the cluster
    (``member_remove``): etcd stopped and kept from starting
    (``pgha_service.disable``), its data directory moved aside to
    ``<data_dir>.removed-<UTC time>`` (kept; deleted when ``purge``) so
    that the host can join again from an empty one. Returns where the data
    went.

    CLI Example:

    .. code-block:: bash

        salt postgres04 etcd_cluster.retire_local
    """
    service = __salt__["pgha_service.disable"]("etcd")
    data_dir = local()["data_dir"]
    moved = None
    if os.path.isdir(data_dir) and os.listdir(data_dir):
        if purge:
            __salt__["file.remove"](data_dir)
            moved = "removed"
        else:
            moved = f"{data_dir}.removed-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}"
            os.rename(data_dir, moved)
    return {"service": {"running": service.get("running"), "disabled": True}, "data_dir": data_dir, "data": moved}
