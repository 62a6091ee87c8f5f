"""
The pgha runner, on the Salt master: the operator's view of the whole
cluster and the commands that need all of it at once. It sequences and
formats: the layout comes from a PostgreSQL minion (``pgha_config.mapdata``),
the passwords from the master's own pillar, the facts from the shared code
in ``_utils/`` and the minions' functions. Checks and drills connect as the
formula's probe role to its own database, never to the users' data. Needs
psycopg on the master (matplotlib, optional, draws the drill's timeline).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import tempfile
from typing import Any

import salt.client
import salt.fileserver
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha"

ROLLING = ("postgresql", "patroni")


def __virtual__():
    if importlib.util.find_spec("psycopg") is None:
        return (False, "pgha runner: psycopg is not installed in the master's Python")
    return __virtualname__


def _caller():
    """
    ``call(minion, function, *args, wait=60)``: its answer, or an error with its message. Callbacks
    handed to ``_utils/`` run in their loader context, where this module's dunders do not resolve.
    """
    conf_file = __opts__["conf_file"]

    def call(tgt: str, fun: str, *args: Any, wait: int = 60, **kwargs: Any) -> Any:
        with salt.client.get_local_client(conf_file) as client:
            ret = client.cmd(tgt, fun, arg=list(args), kwarg=kwargs or None, timeout=wait, full_return=True)
        if tgt not in ret:
            raise CommandExecutionError(f"pgha: minion {tgt} did not answer {fun} within {wait} s")
        answer = ret[tgt]
        if not isinstance(answer, dict) or answer.get("retcode", 0) != 0:
            detail = answer.get("ret") if isinstance(answer, dict) else answer
            raise CommandExecutionError(f"pgha: {fun} on {tgt} failed: {detail}")
        return answer.get("ret")

    return call


def _master_pillar() -> dict:
    """The master's own pillar (its id: <host>_master unless its configuration sets one), with every secret."""
    return __salt__["pillar.show_pillar"](__opts__["id"])


def _topology() -> dict:
    """The cluster's model (from the first PostgreSQL node that answers) with the master pillar's secrets."""
    pillar = _master_pillar()
    cfg = pillar.get("pgha") if isinstance(pillar, dict) else None
    if not isinstance(cfg, dict) or not cfg.get("nodes"):
        raise CommandExecutionError("pgha: the master's pillar has no pgha:nodes; does the pillar top target the master?")
    candidates = sorted(n for n, node in cfg["nodes"].items() if "postgresql" in (node.get("roles") or []))
    problems, call = [], _caller()
    for name in candidates:
        try:
            data = call(name, "pgha_config.mapdata", wait=30)
        except CommandExecutionError as exc:
            problems.append(str(exc))
            continue
        data["secrets"] = cfg.get("secrets", {})
        return data
    raise CommandExecutionError("pgha: no PostgreSQL node answered: " + "; ".join(problems))


def _api(topo: dict):
    return __utils__["pgha_cluster.patroni_api_of"](topo)


def _members_of(api) -> list[dict]:
    """The members with their health facts, [] when no member answers."""
    try:
        return api.members()
    except CommandExecutionError as exc:
        log.info("pgha: %s", exc)
        return []


def _haproxy_reader(topo: dict, listener: str | None = "postgres"):
    """A reader of each server's state (UP, ...) in one listener, or (None) in every one: {listener: {...}}."""
    page, names = __utils__["pgha_cluster.haproxy_stats_page"], [entry["name"] for entry in topo["haproxy"]["listeners"]]

    def read() -> dict:
        found = {name: {server: entry["status"] for server, entry in servers.items()}
                 for name, servers in page(topo).items() if name in names}
        return found.get(listener, {}) if listener else {name: found[name] for name in names if name in found}

    return read


def _fail(result: dict) -> dict:
    """A failed result: the orchestration sees it (retcode in the context) and so does salt-run's exit code."""
    __context__["retcode"] = 1
    result["retcode"] = 1
    return result


def _one_line(function):
    """
    A bad argument, or a cluster the command cannot reach, answered with one
    line naming the command and the problem and a non-zero exit, never a
    traceback. Arguments are checked before anything is touched.
    """

    @functools.wraps(function)
    def answer(*args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except (ValueError, CommandExecutionError) as exc:
            __context__["retcode"] = 1
            data = {f"pgha.{function.__name__}": str(exc), "retcode": 1}
            return {"outputter": "txt", "data": data} if __opts__.get("output") in (None, "", "nested", "txt") else data

    return answer


def _check(kind: str, *args: Any, **kwargs: Any) -> Any:
    """One argument check of ``_utils/pgha_args.py``: the value to use, or ``ValueError`` with one line."""
    return __utils__[f"pgha_args.{kind}"](*args, **kwargs)


@_one_line
def write_check(timeout: Any = 60, path: str = "leader") -> dict:
    """
    Check, waiting at most ``timeout`` s, that a write through HAProxy's leader port (or
    ``path=pooler``) commits on the Patroni leader (the probe role, in the formula's database).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.write_check timeout=60
        salt-run pgha.write_check path=pooler
    """
    limit = _check("seconds", timeout, "timeout")
    topo = _topology()
    options = _drill_options(topo, {"path": path})
    api, leader_of = _api(topo), __utils__["pgha_cluster.leader_of"]

    def leader_address() -> str | None:
        leader = leader_of(_members_of(api))
        return topo["nodes"][leader["name"]]["address"] if leader else None

    result = __utils__["pgha_drill.wait_write"](__utils__["pgha_drill.probe_dsn"](topo, options["path"]),
                                                leader_address, limit)
    return result if result["ok"] else _fail(result)


def _status_data(topo: dict) -> dict:
    call = _caller()

    def etcd_health() -> dict:
        return call(topo["etcd_nodes"][0], "etcd_cluster.health", wait=30)

    return __utils__["pgha_cluster.cluster_status"](_api(topo), etcd_health, _haproxy_reader(topo, None))


@_one_line
def status(table: Any = None) -> Any:
    """
    The whole cluster: Patroni members (role, state, timeline, lag, streaming, version), etcd's
    endpoints, HAProxy's servers. A table; data with ``--out=json`` (or ``table=False``).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.status
        salt-run pgha.status --out=json
    """
    as_table = __opts__.get("output") in (None, "", "nested", "txt") if table is None else _check("flag", table, "table")
    data = _status_data(_topology())
    return {"outputter": "txt", "data": __utils__["pgha_cluster.status_table"](data)} if as_table else data


@_one_line
def check(max_lag: Any = None) -> dict:
    """
    Every health gate at once: etcd, one leader, every member streaming on its timeline within the
    lag bound, HAProxy's writes to the leader alone, the probe role writing through HAProxy.
    Non-zero exit when anything is unhealthy (for cron or monitoring).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.check
        salt-run pgha.check max_lag=1048576
    """
    bound = None if max_lag is None else _check("count", max_lag, "max_lag")
    topo = _topology()
    data = _status_data(topo)
    bound = topo["gates"]["max_lag_bytes"] if bound is None else bound
    problems = __utils__["pgha_cluster.cluster_problems"](data, len(topo["pg_nodes"]), bound)
    leader_address = topo["nodes"][data["leader"]]["address"] if data["leader"] else None
    problems += __utils__["pgha_drill.probe_problems"](__utils__["pgha_drill.probe_dsn"](topo), leader_address)
    result = {"healthy": not problems, "problems": problems, "leader": data["leader"]}
    return result if not problems else _fail(result)


@_one_line
def validate(pillar: dict | None = None, tgt: Any = "*", tgt_type: str = "glob") -> dict:
    """
    Check the ``pgha`` pillar, or a change to it (``pillar='{"pgha": ...}'``): each minion what it
    sees (its roles' secrets), the master every secret, and that the master's file server serves no
    file under a pillar root and none holding a secret. Every wrong key (or file) named; non-zero exit.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.validate
        salt-run pgha.validate pillar='{"pgha": {"patroni": {"ttl": 10}}}'
    """
    if pillar is not None and not isinstance(pillar, dict):
        raise ValueError(f"pillar must be a map such as '{{\"pgha\": {{...}}}}' (got {pillar!r})")
    with salt.client.get_local_client(__opts__["conf_file"]) as client:
        ret = client.cmd(tgt, "pgha_config.validate", kwarg={"pillar": pillar} if pillar else None, timeout=60,
                         tgt_type=tgt_type, full_return=True)
    errors = __utils__["pgha_secrets.minion_errors"](ret, tgt, tgt_type)
    master = (_master_pillar() or {}).get("pgha") or {}  # the master is given every secret
    errors += [e for e in __utils__["pgha_secrets.cluster_problems"](master, pillar) if e not in errors]
    errors += __utils__["pgha_fileserver.problems"](_served_files(), __opts__.get("pillar_roots"),
                                                    master.get("secrets"))
    result = {"valid": not errors, "errors": errors, "minions": sorted(ret)}
    return result if not errors else _fail(result)


def _served_files() -> list[tuple[str, str, str]]:
    """
    Every file the master's file server lists, in every environment: (saltenv, name, path on the master).
    Read with a cache of its own, so that the master's cached file lists are left as they are.
    """
    with tempfile.TemporaryDirectory(prefix="pgha-fileserver-") as cache:
        server = salt.fileserver.Fileserver(dict(__opts__, cachedir=cache))
        return [(saltenv, name, server.find_file(name, saltenv).get("path") or "")
                for saltenv in server.envs() for name in server.file_list({"saltenv": saltenv})]


def _drill_options(topo: dict, given: dict) -> dict:
    return _check("drill_options", given, topo["drill"], topo["patroni"]["ttl"], topo["pg_nodes"], topo["etcd_nodes"],
                  topo["pgbouncer"]["enabled"])


def _driller(topo: dict, mode: str, options: dict):
    """A function that runs one drill through the engine and returns its report."""
    fault, run = __utils__["pgha_faults.fault"](mode), __utils__["pgha_drill.run"]
    ctx = __utils__["pgha_drill.context"](
        topo=topo,
        call=_caller(),
        api=_api(topo),
        haproxy=_haproxy_reader(topo),
        dsn=__utils__["pgha_drill.probe_dsn"](topo, options["path"]),
        timeout=options["timeout"],
        options=options,
        rules=__utils__["pgha_cluster.rules"](),
        report_dir=topo["drill"]["report_dir"] if options["report"] else None,
    )
    return lambda: run(ctx, fault)


@_one_line
def failover_drill(mode: str = "stop", timeout: Any = None, report: Any = True, candidate: str | None = None,
                   freeze_s: Any = None, outage_s: Any = None, member: str | None = None, path: str = "leader") -> dict:
    """
    Inject a fault (docs/explanation/drill.md: stop, crash, switchover,
    freeze, dcs-outage, etcd-member-loss, sync-standby-loss) while the
    probe role writes numbered rows through HAProxy (or ``path=pooler``),
    undo it whatever fails, and measure: what was restored, lost
    (``lost``, ``failed_writes``) and how long (``rto_s``, ...). Non-zero
    exit when not ``ok``; JSON report and picture in ``pgha:drill:report_dir``.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.failover_drill mode=stop
        salt-run pgha.failover_drill mode=freeze --out=json
        salt-run pgha.failover_drill mode=dcs-outage outage_s=40
        salt-run pgha.failover_drill mode=switchover path=pooler
    """
    __utils__["pgha_faults.fault"](mode)
    topo = _topology()
    options = _drill_options(topo, {"timeout": timeout, "report": report, "candidate": candidate, "path": path,
                                    "freeze_s": freeze_s, "outage_s": outage_s, "member": member})
    result = _driller(topo, mode, options)()
    return result if result["ok"] else _fail(result)


@_one_line
def switchover(candidate: str | None = None, timeout: Any = None) -> dict:
    """
    A planned move of the leader (to ``candidate``) through Patroni, measured by the drill's
    writer: ``rto_s``, ``write_gap_s``, ``failed_writes``, ``client_stall_s``, ``lost``. PgBouncer
    is paused for the move and resumed once HAProxy routes to the new leader, whatever fails.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.switchover
        salt-run pgha.switchover candidate=postgres02
    """
    topo = _topology()
    options = _drill_options(topo, {"timeout": timeout, "report": False, "candidate": candidate})
    result = _driller(topo, "switchover", options)()
    return result if result["ok"] else _fail(result)


def _rolling(action: str, what: str, pending_only: bool, timeout: float) -> dict:
    """A rolling restart or reload through ``_utils/pgha_rolling.py``, acting through the members' minions."""
    topo = _topology()
    api, call = _api(topo), _caller()
    only = None
    if action == "restart" and what == "postgresql" and pending_only:
        only = {m["name"] for m in _members_of(api) if m["pending_restart"]}

    def act(name: str) -> Any:
        if action == "reload":
            return call(name, "patroni.reload", wait=int(timeout))
        if what == "patroni":
            return call(name, "pgha_service.restart", "patroni", wait=int(timeout))
        return call(name, "patroni.restart", pending_only=pending_only, timeout=int(timeout), wait=int(timeout) + 60)

    steps = __utils__["pgha_rolling.steps"](
        members=lambda: _members_of(api), rules=__utils__["pgha_cluster.rules"](), expected=len(topo["pg_nodes"]),
        max_lag=topo["patroni"]["maximum_lag_on_failover"], act=act, timeout=timeout,
        switchover=_driller(topo, "switchover", _drill_options(topo, {"timeout": timeout, "report": False})),
    )
    result = __utils__["pgha_rolling.run"](steps, action, only)
    if only is not None:
        result["pending_restart_before"] = sorted(only)
    return result if result["ok"] else _fail(result)


@_one_line
def restart(pending_only: Any = True, timeout: Any = 120, what: str = "postgresql") -> dict:
    """
    Rolling restart, replicas first, each followed by a health gate, the leader last after a
    switchover: PostgreSQL through Patroni (default; only members with ``pending_restart`` unless
    ``pending_only=False``), or ``what=patroni``: the Patroni service (a newly installed Patroni).

    CLI Example:

    .. code-block:: bash

        salt-run pgha.restart
        salt-run pgha.restart pending_only=False
        salt-run pgha.restart what=patroni
    """
    _check("choice", what, "what", ROLLING)
    limit = _check("seconds", timeout, "timeout", minimum=10)
    return _rolling("restart", what, _check("flag", pending_only, "pending_only"), limit)


@_one_line
def reload(timeout: Any = 60) -> dict:
    """
    Rolling reload of Patroni's and PostgreSQL's configuration (replicas
    first, leader last), each followed by a health gate.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.reload
    """
    return _rolling("reload", "patroni", False, _check("seconds", timeout, "timeout", minimum=10))


@_one_line
def retire(purge_data: Any = False, timeout: Any = 120) -> dict:
    """
    Scale in (``_utils/pgha_retire.py``): Patroni members pillar no longer lists leave one at a time
    (switchover away, HAProxy drain, Patroni disabled, gone from the member list); data kept unless
    ``purge_data=True``. The orchestration runs it before the PostgreSQL states.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.retire
        salt-run pgha.retire purge_data=True
    """
    purge = _check("flag", purge_data, "purge_data")
    limit = _check("seconds", timeout, "timeout", minimum=10)
    topo = _topology()
    api = _api(topo)

    def members() -> list[dict]:
        return _members_of(api)

    # Made here: the callbacks run in the utilities' loader context, where this module's dunders do not resolve.
    scoped = __utils__["pgha_retire.scoped"](topo, members())
    options = _drill_options(scoped, {"timeout": limit, "report": False})
    acts = __utils__["pgha_retire.acts_through"](_caller(), members, topo, scoped, options,
                                                 _driller(scoped, "switchover", options), limit)
    result = __utils__["pgha_retire.run"](acts, purge)
    return result if result["ok"] else _fail(result)


@_one_line
def cold_start(timeout: Any = 120) -> dict:
    """
    A stopped cluster started again (``_utils/pgha_cold_start.py``): when
    no Patroni member leads, every PostgreSQL node that holds the cluster's
    data is started, and a leader awaited (Patroni gives the lock only to a
    member that cannot have missed an acknowledged write). A running or a
    new cluster is left alone. The orchestration runs it before the
    bootstrap leader's stage.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.cold_start
    """
    limit = _check("seconds", timeout, "timeout", minimum=10)
    topo, call = _topology(), _caller()
    api = _api(topo)
    acts = __utils__["pgha_cold_start.acts"](
        members=lambda: _members_of(api),
        local=lambda name: call(name, "patroni.local", wait=60),
        start=lambda name: call(name, "state.apply", "pgha.postgresql", wait=int(limit) + 240),
        wait_leader=lambda name: call(name, "patroni.wait_leader", timeout=int(limit), wait=int(limit) + 60),
        leader_of=__utils__["pgha_cluster.leader_of"],
    )
    result = __utils__["pgha_cold_start.run"](acts, list(topo["pg_nodes"]))
    return result if result["ok"] else _fail(result)


@_one_line
def etcd_members(purge_data: Any = False, timeout: Any = 120) -> dict:
    """
    etcd's members follow pillar (``_utils/pgha_etcd_members.py``), one at a time, health checked after
    each: new etcd nodes join the running cluster, members pillar no longer lists leave (etcd stopped,
    data moved aside unless ``purge_data=True``). The orchestration runs it before etcd's states.

    CLI Example:

    .. code-block:: bash

        salt-run pgha.etcd_members
    """
    purge = _check("flag", purge_data, "purge_data")
    limit = _check("seconds", timeout, "timeout", minimum=10)
    wanted = _topology()["etcd"]["peer_urls"]
    result = __utils__["pgha_etcd_members.run"](__utils__["pgha_etcd_members.acts_through"](_caller(), wanted, limit),
                                                wanted, purge)
    return result if result["ok"] else _fail(result)
