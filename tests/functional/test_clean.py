"""
The clean states (pgha.<component>.clean, pgha.clean), rendered with
`salt-call --local` as tests/functional/test_rendering.py does (its SaltEnv:
every path under a root in pytest's tmp directory) for both service managers:
systemd (the production pillar) and supervisord (lookup:service_manager set,
PgBouncer on). Rendered only (state.show_sls) where a state would reach the
machine (systemd units, packages); applied for real only under a root with
supervisord, where packages are never touched (the machine's, shared by
every root) and the only process stopped is a supervisord these tests start
in their own root.
"""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import time

import pytest
from pgha_test_helpers import TEST_SECRETS
from test_rendering import LAB_SECRETS, PKI_NODES, SaltEnv, salt_root  # noqa: F401 (salt_root: a fixture)

SYSTEMD = {"pgha": {"secrets": TEST_SECRETS}}
SUPERVISORD = {
    "pgha": {"secrets": TEST_SECRETS, "lookup": {"service_manager": "supervisord"}, "pgbouncer": {"enabled": True}}
}
PURGE = {"pgha": {"clean": {"purge_data": True}}}
NO_ROOT = {"pgha": {"lookup": {"root": ""}}}

# Where each component's clean is applied, and the minion whose roles pgha.clean cleans.
MINION = {
    "etcd": "etcd",
    "patroni": "postgres01",
    "postgresql": "postgres01",
    "haproxy": "haproxy",
    "pgbouncer": "haproxy",
    "supervisord": "postgres01",
    "backup": "backup",
}
# Directories that hold data (and logs), by the state that keeps them unless pgha:clean:purge_data.
DATA = {
    "pgha-etcd-data-dir-clean": ["/var/lib/etcd/default"],
    "pgha-patroni-data-dir-clean": ["/var/lib/patroni", "/var/log/patroni"],
    "pgha-supervisord-log-dir-clean": ["/var/log/pgha"],
    # on the backup node the repository, on a PostgreSQL node archive-push's queue; pgBackRest's logs
    "pgha-pgbackrest-data-clean": ["/var/log/pgbackrest"],
}


def service_ids(prefix: str, manager: str, units: bool = False) -> set[str]:
    if manager == "supervisord":
        pieces = {"service-dead", "service-program", "service-update"}
    else:
        pieces = {"service-dead"} | ({"unit-files", "unit-daemon-reload"} if units else set())
    return {f"{prefix}-{piece}-clean" for piece in pieces | {"service"}}


def expected_ids(component: str, manager: str) -> set[str]:
    """The state ids of pgha.<component>.clean (production pillar; PgBouncer on with supervisord)."""
    ids = {
        "etcd": service_ids("pgha-etcd", manager, units=True)
        | {
            "pgha-etcd-initial-env-file-clean",
            "pgha-etcd-package-clean",
            "pgha-etcd-env-file-clean",
            "pgha-etcd-data-dir-clean",
        },
        "patroni": service_ids("pgha-patroni", manager, units=True)
        | {
            "pgha-patroni-config-file-clean",
            "pgha-patroni-post-bootstrap-file-clean",
            "pgha-patroni-pgpass-file-clean",
            "pgha-patroni-venv-dir-clean",
            "pgha-patroni-venv-package-clean",
            "pgha-patroni-data-dir-clean",
        }
        | ({"pgha-patroni-watchdog-files-clean"} if manager == "systemd" else set()),
        "pgbouncer": service_ids("pgha-pgbouncer", manager)
        | {"pgha-pgbouncer-package-clean", "pgha-pgbouncer-config-file-clean", "pgha-pgbouncer-auth-file-clean"},
        "haproxy": service_ids("pgha-haproxy", manager)
        | {
            "pgha-haproxy-hosts-entries-clean",
            "pgha-haproxy-socket-dir-clean",
            "pgha-haproxy-package-clean",
            "pgha-haproxy-config-file-clean",
        },
        "supervisord": {"pgha-supervisord-clean"}
        if manager == "systemd"
        else {
            f"pgha-supervisord-{what}-clean"
            for what in ("service-dead", "config-file", "include-dir", "runtime-files", "package", "log-dir")
        },
    }
    # the production pillar has a backup node: its PostgreSQL nodes run pgBackRest too
    ids["pgbackrest"] = service_ids("pgha-pgbackrest", manager, units=True) | {
        "pgha-pgbackrest-secrets-clean", "pgha-pgbackrest-package-clean", "pgha-pgbackrest-data-clean"}
    ids["postgresql"] = ids["patroni"] | ids["pgbackrest"] | {"pgha-postgresql-package-clean",
                                                               "pgha-pgbackrest-archive-push-clean"}
    schedule = ({f"pgha-backup-{kind}-timer-dead-clean" for kind in ("full", "diff", "incr")} if manager == "systemd"
                else service_ids("pgha-backup-schedule", manager))
    ids["backup"] = ids["pgbackrest"] | schedule | {"pgha-backup-files-clean"}
    if manager == "supervisord":  # PgBouncer on: HAProxy's clean cleans it first
        ids["haproxy"] |= ids["pgbouncer"]
    return ids[component]


# ---------------------------------------------------------------------------
# rendering
# ---------------------------------------------------------------------------


@pytest.fixture(scope="module", params=["systemd", "supervisord"])
def manager_env(request, tmp_path_factory, salt_root) -> SaltEnv:  # noqa: F811
    env = SaltEnv(
        tmp_path_factory.mktemp(f"pgha-clean-{request.param}"),
        ["pgha.production"],
        SYSTEMD if request.param == "systemd" else SUPERVISORD,
        salt_root,
    )
    env.manager = request.param
    env.rendered = {}
    return env


def render(env: SaltEnv, sls: str, minion_id: str, pillar: dict | None = None) -> dict[str, dict]:
    """state.show_sls (nothing runs): id -> {"state": "file.absent", "sls": ..., <argument>: value}; cached."""
    key = (sls, minion_id, json.dumps(pillar, sort_keys=True))
    if key not in env.rendered:
        extra = ["pillar=" + json.dumps(pillar)] if pillar else []
        proc = env.call("state.show_sls", sls, *extra, minion_id=minion_id)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        states = {}
        for state_id, body in json.loads(proc.stdout)["local"].items():
            [(module, args)] = [(k, v) for k, v in body.items() if not k.startswith("__")]
            entry = {"state": module + "." + next(arg for arg in args if isinstance(arg, str)), "sls": body["__sls__"]}
            for arg in args:
                if isinstance(arg, dict):
                    entry.update(arg)
            states[state_id] = entry
        env.rendered[key] = states
    return env.rendered[key]


def removed_paths(states: dict[str, dict]) -> list[str]:
    """Every path a file.absent names."""
    paths = []
    for state in states.values():
        if state["state"] == "file.absent":
            paths.extend(state.get("names") or [state["name"]])
    return paths


def requisites(states: dict[str, dict], state_id: str) -> set[str]:
    """The ids a state waits for, directly (require, onchanges; an sls: every state of that file)."""
    found = set()
    for ref in states[state_id].get("require", []) + states[state_id].get("onchanges", []):
        [(kind, name)] = ref.items()
        found |= {other for other, state in states.items() if state["sls"] == name} if kind == "sls" else {name}
    return found


def before(states: dict[str, dict], first: str, then: str) -> bool:
    """`then` waits, through its requisites, for `first`."""
    seen, todo = set(), [then]
    while todo:
        for required in requisites(states, todo.pop()) - seen:
            seen.add(required)
            todo.append(required)
    return first in seen


COMPONENTS = ["etcd", "patroni", "postgresql", "haproxy", "pgbouncer", "supervisord", "backup"]


@pytest.mark.parametrize("component", COMPONENTS)
def test_clean_state_ids(manager_env, component):
    states = render(manager_env, f"pgha.{component}.clean", MINION[component])
    assert set(states) == expected_ids(component, manager_env.manager)
    # under a root every path removed is the minion's own
    root = str(manager_env.root(MINION[component]))
    assert all(path.startswith(root + "/") for path in removed_paths(states)), removed_paths(states)


@pytest.mark.parametrize("component", COMPONENTS)
def test_clean_keeps_data_directories(manager_env, component):
    minion_id = MINION[component]
    states = render(manager_env, f"pgha.{component}.clean", minion_id)
    keepers = {state_id: paths for state_id, paths in DATA.items() if state_id in states}
    data = [str(manager_env.path(minion_id, path)) for paths in keepers.values() for path in paths]
    # every data directory on this host, whichever component's clean this is
    everywhere = [str(manager_env.path(minion_id, path)) for paths in DATA.values() for path in paths]
    for path in removed_paths(states):
        assert not any(
            path == kept or kept.startswith(path + "/") or path.startswith(kept + "/") for kept in everywhere
        ), path
    commands = " ".join(state["name"] for state in states.values() if state["state"] == "cmd.run")
    assert not any(kept in commands for kept in everywhere), commands
    # said so
    for state_id, paths in keepers.items():
        assert states[state_id]["state"] == "test.nop", state_id
        assert states[state_id]["name"].startswith("kept (pgha:clean:purge_data is false): ")
        assert all(str(manager_env.path(minion_id, path)) in states[state_id]["name"] for path in paths)
    expected = {
        "etcd": 1,
        "patroni": 2,
        "postgresql": 3,
        "supervisord": 1 if manager_env.manager == "supervisord" else 0,
        "backup": 1,
    }
    assert len(data) == expected.get(component, 0)


def states_of(component: str) -> list[str]:
    """The components whose states pgha.<component>.clean holds (its own and those it includes)."""
    return {"postgresql": ["patroni", "postgresql"], "haproxy": ["haproxy", "pgbouncer"]}.get(component, [component])


@pytest.mark.parametrize("component", ["etcd", "patroni", "supervisord"])
def test_clean_purges_data_when_asked(manager_env, component):
    states = render(manager_env, f"pgha.{component}.clean", MINION[component], PURGE)
    if manager_env.manager == "systemd" and component == "supervisord":
        assert list(states) == ["pgha-supervisord-clean"]  # no supervisord of pgha's on systemd hosts
        return
    state_id = "pgha-supervisord-log-dir-clean" if component == "supervisord" else f"pgha-{component}-data-dir-clean"
    purged = states[state_id]
    assert purged["state"] == "file.absent"
    assert purged["names"] == [str(manager_env.path(MINION[component], path)) for path in DATA[state_id]]
    # only once the service is stopped
    assert before(states, f"pgha-{component}-service-dead-clean", state_id)
    if component == "etcd":
        # and the copies moved aside when the member left (etcd_cluster.retire_local)
        copies = states["pgha-etcd-retired-data-clean"]
        assert copies["name"] == f"rm -rf -- {manager_env.path('etcd', '/var/lib/etcd/default')}.removed-*"
        assert before(states, "pgha-etcd-service-dead-clean", "pgha-etcd-retired-data-clean")


@pytest.mark.parametrize("component", ["etcd", "patroni", "postgresql", "haproxy", "pgbouncer"])
def test_clean_stops_the_service_before_removing_anything(manager_env, component):
    states = render(manager_env, f"pgha.{component}.clean", MINION[component])
    for owner in states_of(component):
        if f"pgha-{owner}-service-dead-clean" not in states:
            continue
        stop = f"pgha-{owner}-service-dead-clean"
        for state_id in states:
            if (
                state_id.startswith(f"pgha-{owner}-")
                and state_id not in service_ids(f"pgha-{owner}", "supervisord")
                and state_id not in service_ids(f"pgha-{owner}", "systemd", units=True)
            ):
                assert before(states, stop, state_id), (stop, state_id)
        # the service is out of its manager before its configuration and packages go
        assert before(
            states,
            f"pgha-{owner}-service-clean",
            f"pgha-{owner}-package-clean" if owner != "patroni" else "pgha-patroni-venv-package-clean",
        )
    if component == "postgresql":
        # Patroni (it runs PostgreSQL) entirely cleaned before PostgreSQL's packages go
        for state_id in expected_ids("patroni", manager_env.manager):
            assert before(states, state_id, "pgha-postgresql-package-clean"), state_id
    if component == "patroni":
        assert before(states, "pgha-patroni-config-file-clean", "pgha-patroni-venv-package-clean")
        assert before(states, "pgha-patroni-venv-dir-clean", "pgha-patroni-venv-package-clean")
    if component == "haproxy" and manager_env.manager == "supervisord":
        # PgBouncer, in front of HAProxy, goes first
        assert before(states, "pgha-pgbouncer-service-clean", "pgha-haproxy-service-dead-clean")


def test_clean_removes_conffiles_only_once_their_package_is(manager_env):
    """haproxy.cfg, pgbouncer.ini, userlist.txt, /etc/default/etcd: Debian's conffiles the formula rewrote."""
    for component, conffiles in {
        "etcd": ["env-file"],
        "haproxy": ["config-file"],
        "pgbouncer": ["config-file", "auth-file"],
    }.items():
        states = render(manager_env, f"pgha.{component}.clean", MINION[component])
        for conffile in conffiles:
            assert before(states, f"pgha-{component}-package-clean", f"pgha-{component}-{conffile}-clean")


def test_clean_systemd_units_and_watchdog(manager_env):
    states = render(manager_env, "pgha.postgresql.clean", "postgres01")
    if manager_env.manager == "supervisord":
        assert not any(state["state"] == "service.dead" for state in states.values())
        program = states["pgha-patroni-service-program-clean"]["names"]
        include = manager_env.path("postgres01", "/etc/pgha/supervisord.d")
        # and the file pgha_service.disable leaves on a retired node
        assert program == [f"{include}/patroni.conf", f"{include}/patroni.conf.disabled"]
        assert states["pgha-patroni-service-update-clean"]["name"].endswith(" update patroni")
        return
    dead = states["pgha-patroni-service-dead-clean"]
    assert (dead["state"], dead["name"], dead["enable"]) == ("service.dead", "patroni", False)
    assert states["pgha-patroni-unit-files-clean"]["names"] == [
        str(manager_env.path("postgres01", "/etc/systemd/system/patroni.service"))
    ]
    reload = states["pgha-patroni-unit-daemon-reload-clean"]
    assert (reload["name"], reload["onchanges"]) == (
        "systemctl daemon-reload",
        [{"file": "pgha-patroni-unit-files-clean"}],
    )
    assert states["pgha-patroni-watchdog-files-clean"]["names"] == [
        str(manager_env.path("postgres01", "/etc/udev/rules.d/61-pgha-watchdog.rules")),
        str(manager_env.path("postgres01", "/etc/modules-load.d/pgha-watchdog.conf")),
    ]
    etcd = render(manager_env, "pgha.etcd.clean", "etcd")
    assert etcd["pgha-etcd-unit-files-clean"]["names"] == [
        str(manager_env.path("etcd", "/etc/systemd/system/etcd.service.d/pgha-initial.conf"))
    ]


def test_clean_packages_only_on_a_host_of_its_own(manager_env):
    """Under a root (the lab) packages are the machine's: kept. Without one, removed (rendered only)."""
    rooted = render(manager_env, "pgha.clean", "postgres01")
    for state_id in ("pgha-postgresql-package-clean", "pgha-patroni-venv-package-clean"):
        assert rooted[state_id]["state"] == "test.nop"
        assert "lookup:root is set" in rooted[state_id]["name"]
    own = render(manager_env, "pgha.clean", "postgres01", NO_ROOT)
    assert own["pgha-postgresql-package-clean"]["pkgs"] == ["postgresql-15"]
    assert own["pgha-patroni-venv-package-clean"]["pkgs"] == ["python3-venv"]
    assert own["pgha-patroni-config-file-clean"]["name"] == "/etc/patroni/config.yml"
    assert own["pgha-patroni-venv-dir-clean"]["name"] == "/opt/pgha/patroni"
    if manager_env.manager == "supervisord":
        assert own["pgha-supervisord-package-clean"]["pkgs"] == ["supervisor"]
    haproxy = render(manager_env, "pgha.clean", "haproxy", NO_ROOT)
    assert haproxy["pgha-haproxy-package-clean"]["pkgs"] == ["haproxy"]
    assert haproxy["pgha-haproxy-config-file-clean"]["name"] == "/etc/haproxy/haproxy.cfg"
    for state in own.values():
        assert state["state"] != "pkgrepo.absent"  # the PGDG repository is off by default


def exporter_ids(manager: str, postgresql: bool = False, pooler: bool = False) -> set[str]:
    """pgha.exporters.clean's state ids on a host (the production example monitors: every host has exporters)."""
    ids = service_ids("pgha-node-exporter", manager) | {
        "pgha-exporters-package-clean", "pgha-node-exporter-env-file-clean", "pgha-postgres-exporter-env-file-clean",
        "pgha-exporters-files-clean", "pgha-exporters-data-clean"}
    ids |= service_ids("pgha-postgres-exporter", manager) if postgresql else set()
    return ids | (service_ids("pgha-pgbouncer-exporter", manager, units=True) if pooler else set())


def test_clean_for_every_role_of_the_minion(manager_env):
    supervisord, manager = expected_ids("supervisord", manager_env.manager), manager_env.manager
    assert (
        set(render(manager_env, "pgha.clean", "postgres01"))
        == expected_ids("postgresql", manager) | supervisord | exporter_ids(manager, postgresql=True)
    )
    assert set(render(manager_env, "pgha.clean", "etcd")) == expected_ids("etcd", manager) | supervisord | exporter_ids(
        manager)
    haproxy = set(render(manager_env, "pgha.clean", "haproxy"))
    assert haproxy == expected_ids("haproxy", manager) | supervisord | exporter_ids(
        manager, pooler=manager == "supervisord")
    monitor = set(render(manager_env, "pgha.clean", "monitor"))
    assert {"pgha-prometheus-service-clean", "pgha-alertmanager-service-clean", "pgha-monitor-files-clean",
            "pgha-monitor-data-clean", "pgha-monitor-package-clean"} <= monitor
    assert exporter_ids(manager) <= monitor
    # PgBouncer's clean comes with HAProxy's when it is enabled (the supervisord pillar here), not otherwise
    assert ("pgha-pgbouncer-service-clean" in haproxy) is (manager_env.manager == "supervisord")


def test_clean_supervisord_runs_last(manager_env):
    if manager_env.manager == "systemd":
        assert (
            render(manager_env, "pgha.supervisord.clean", "postgres01")["pgha-supervisord-clean"]["state"] == "test.nop"
        )
        return
    states = render(manager_env, "pgha.clean", "postgres01")
    for state_id in expected_ids("supervisord", "supervisord"):
        # every state of it: a required state would otherwise be pulled before the others
        assert states[state_id]["order"] == "last", state_id
    stop = states["pgha-supervisord-service-dead-clean"]
    conf = str(manager_env.path("postgres01", "/etc/pgha/supervisord.conf"))
    # stops this root's supervisord only: the one whose command line names this root's configuration file
    assert stop["onlyif"].endswith(f"grep -qxF -- {conf}")
    assert "/run/pgha/supervisord.pid" in stop["name"]


def test_clean_refuses_a_path_too_near_the_root(manager_env):
    proc = manager_env.call(
        "state.show_sls",
        "pgha.patroni.clean",
        "pillar=" + json.dumps({"pgha": {"lookup": {"patroni": {"data_dir": "/var"}}, "clean": {"purge_data": True}}}),
        minion_id="postgres01",
    )
    assert proc.returncode != 0
    text = "\n".join(json.loads(proc.stdout)["local"])
    assert f'clean refuses to remove "{manager_env.path("postgres01", "/var")}"' in text


def test_clean_keeps_packages_another_role_uses(tmp_path_factory, salt_root):  # noqa: F811
    """postgres01 of the three-member etcd topology is also an etcd member: etcd's clean leaves Patroni's packages."""
    env = SaltEnv(
        tmp_path_factory.mktemp("pgha-clean-shared"), ["pgha.production", "pgha.production_ha"], SYSTEMD, salt_root
    )
    env.rendered = {}
    shared = {"pgha": {"lookup": {"root": "", "patroni": {"venv_pkgs": ["python3-venv", "etcd-client"]}}}}
    states = render(env, "pgha.etcd.clean", "postgres01", shared)
    assert states["pgha-etcd-package-clean"]["pkgs"] == ["etcd-server"]
    # the etcd-only host has no such neighbour
    assert render(env, "pgha.etcd.clean", "etcd", shared)["pgha-etcd-package-clean"]["pkgs"] == [
        "etcd-server",
        "etcd-client",
    ]


def test_clean_without_a_role(manager_env):
    states = render(manager_env, "pgha.clean", "postgres09")
    assert list(states) == ["pgha-clean-no-role"]
    assert "pgha.<component>.clean" in states["pgha-clean-no-role"]["name"]


# ---------------------------------------------------------------------------
# applied, under a root, with supervisord (the lab's pillar)
# ---------------------------------------------------------------------------


def results(env: SaltEnv, sls: str, minion_id: str, test: bool = False) -> dict[str, dict]:
    """state.sls (test=True when asked): the results by state id (names of a `names` state: id|name)."""
    proc = env.call("state.sls", sls, *(["test=True"] if test else []), minion_id=minion_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = {}
    for key, value in json.loads(proc.stdout)["local"].items():
        _, state_id, name, _ = key.split("_|-")
        module = key.split("_|-")[0]
        found[state_id if state_id not in found else f"{state_id}|{name}"] = dict(value, path=name, module=module)
    return found


def changed(found: dict[str, dict]) -> list[str]:
    return sorted(state_id for state_id, value in found.items() if value["changes"])


def supervisorctl(env: SaltEnv, minion_id: str, *args: str) -> subprocess.CompletedProcess:
    conf = env.path(minion_id, "/etc/pgha/supervisord.conf")
    return subprocess.run(["supervisorctl", "-c", str(conf), *args], capture_output=True, text=True, check=False)


def supervisord_pid(env: SaltEnv, minion_id: str) -> int | None:
    """The pid of this root's supervisord (its pid file, its command line naming this root's configuration)."""
    pidfile = env.path(minion_id, "/run/pgha/supervisord.pid")
    try:
        pid = int(pidfile.read_text().split()[0])
        cmdline = pathlib.Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError, IndexError):
        return None
    return pid if str(env.path(minion_id, "/etc/pgha/supervisord.conf")).encode() in cmdline else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(scope="module")
def lab(tmp_path_factory, salt_root) -> SaltEnv:  # noqa: F811
    status = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", "supervisor"], capture_output=True, text=True, check=False
    ).stdout
    if "install ok installed" not in status:
        pytest.fail("Debian package supervisor not installed: run `make deps`", pytrace=False)
    env = SaltEnv(
        tmp_path_factory.mktemp("pgha-clean-lab"), ["pgha.lab"], {"pgha": {"secrets": LAB_SECRETS}}, salt_root
    )
    env.place_pki(PKI_NODES)
    return env


@pytest.fixture
def supervised(lab):
    """
    postgres01 configured (pgha.patroni.config), its supervisord started by
    the formula (pgha.supervisord) and running a stand-in for Patroni under
    Patroni's program name (a sleep): the pids of both.
    """
    lab.apply("pgha.patroni.config", "postgres01")
    lab.apply("pgha.supervisord", "postgres01")
    manager = supervisord_pid(lab, "postgres01")
    assert manager, "pgha.supervisord did not start supervisord"
    try:
        program = lab.path("postgres01", "/etc/pgha/supervisord.d/patroni.conf")
        program.write_text("[program:patroni]\ncommand=/bin/sleep 600\nautostart=true\nstartsecs=0\n")
        assert supervisorctl(lab, "postgres01", "update").returncode == 0
        deadline = time.monotonic() + 20
        stand_in = 0
        while not stand_in and time.monotonic() < deadline:
            out = supervisorctl(lab, "postgres01", "pid", "patroni").stdout.strip()
            stand_in = int(out) if out.isdigit() else 0
            time.sleep(0.2)
        assert stand_in > 0 and alive(stand_in)
        yield {"supervisord": manager, "patroni": stand_in}
    finally:
        # the test's clean stopped it; a failed one may not have
        if supervisord_pid(lab, "postgres01") == manager:
            os.kill(manager, signal.SIGTERM)
            deadline = time.monotonic() + 30
            while alive(manager) and time.monotonic() < deadline:
                time.sleep(0.1)


def test_clean_applied_under_supervisord(lab, supervised):
    config = lab.path("postgres01", "/etc/patroni/config.yml")
    data_dir = lab.path("postgres01", "/var/lib/patroni")
    (data_dir / "PG_VERSION").write_text("15\n")  # what PostgreSQL's data directory holds
    program = lab.path("postgres01", "/etc/pgha/supervisord.d/patroni.conf")

    # test=True: predicted, nothing done
    predicted = results(lab, "pgha.clean", "postgres01", test=True)
    assert {value["result"] for value in predicted.values()} <= {True, None}
    for state_id in (
        "pgha-patroni-service-dead-clean",
        "pgha-patroni-config-file-clean",
        "pgha-supervisord-service-dead-clean",
        "pgha-supervisord-config-file-clean",
    ):
        assert predicted[state_id]["result"] is None, state_id
    assert config.exists() and program.exists()
    assert alive(supervised["patroni"]) and alive(supervised["supervisord"])

    applied = results(lab, "pgha.clean", "postgres01")
    failed = {state_id: value["comment"] for state_id, value in applied.items() if value["result"] is not True}
    assert not failed, failed
    assert not alive(supervised["patroni"])
    assert not alive(supervised["supervisord"])
    assert not config.exists() and not program.exists()
    assert not lab.path("postgres01", "/etc/patroni/post_bootstrap.sh").exists()
    assert not lab.path("postgres01", "/etc/pgha/supervisord.conf").exists()
    # the data kept (pgha:clean:purge_data false), and the PKI's files
    assert (data_dir / "PG_VERSION").is_file()
    assert lab.path("postgres01", "/etc/pgha/pki/postgresql.key").is_file()
    # every file state acted under the minion's root
    for value in applied.values():
        if value["module"] == "file":
            assert value["path"].startswith(str(lab.root("postgres01")) + "/"), value["path"]
    # in order: Patroni stopped before its configuration went, supervisord after everything else
    run = {state_id: value["__run_num__"] for state_id, value in applied.items()}
    assert run["pgha-patroni-service-dead-clean"] < run["pgha-patroni-config-file-clean"]
    last = [num for state_id, num in run.items() if state_id.startswith("pgha-supervisord-")]
    others = [num for state_id, num in run.items() if not state_id.startswith("pgha-supervisord-")]
    assert min(last) > max(others)

    # idempotent, in both modes
    assert changed(results(lab, "pgha.clean", "postgres01")) == []
    again = results(lab, "pgha.clean", "postgres01", test=True)
    assert changed(again) == [] and {value["result"] for value in again.values()} == {True}


def test_clean_haproxy_leaves_the_rest_of_the_hosts_file(lab):
    hosts = lab.path("haproxy", "/etc/hosts")
    hosts.parent.mkdir(parents=True, exist_ok=True)
    hosts.write_text("127.0.0.1 localhost\n10.0.0.9 backup-host\n")
    for sls in ("pgha.haproxy.hosts", "pgha.haproxy.config", "pgha.pgbouncer.config"):
        lab.apply(sls, "haproxy")
    assert "# BEGIN pgha" in hosts.read_text()
    files = [
        lab.path("haproxy", path)
        for path in ("/etc/haproxy/haproxy.cfg", "/etc/pgbouncer/pgbouncer.ini", "/etc/pgbouncer/userlist.txt")
    ]
    assert all(path.exists() for path in files)
    before_clean = {str(path) for path in lab.root("haproxy").rglob("*")}

    applied = results(lab, "pgha.clean", "haproxy")
    assert {value["result"] for value in applied.values()} == {True}
    assert hosts.read_text() == "127.0.0.1 localhost\n10.0.0.9 backup-host\n"
    assert not any(path.exists() for path in files)
    assert not lab.path("haproxy", "/run/haproxy").exists()
    # nothing new (no backup of the hosts file)
    assert {str(path) for path in lab.root("haproxy").rglob("*")} <= before_clean
    assert changed(results(lab, "pgha.clean", "haproxy")) == []


def test_clean_etcd_purges_its_data_when_asked(tmp_path_factory, salt_root):  # noqa: F811
    env = SaltEnv(
        tmp_path_factory.mktemp("pgha-clean-purge"),
        ["pgha.lab"],
        {"pgha": {"secrets": LAB_SECRETS, "clean": {"purge_data": True}}},
        salt_root,
    )
    env.place_pki(PKI_NODES)
    env.apply("pgha.etcd.config", "etcd")
    data_dir = env.path("etcd", "/var/lib/etcd/default")
    (data_dir / "member").mkdir()
    moved = env.path("etcd", "/var/lib/etcd/default.removed-20250101T000000")
    (moved / "member").mkdir(parents=True)

    applied = results(env, "pgha.etcd.clean", "etcd")
    assert {value["result"] for value in applied.values()} == {True}
    assert not data_dir.exists() and not moved.exists()
    assert not env.path("etcd", "/etc/default/etcd").exists()
    assert not env.path("etcd", "/etc/default/etcd-initial").exists()
    # the directory above them is not the formula's: it stays, as the PKI's files do
    assert env.path("etcd", "/var/lib/etcd").is_dir()
    assert env.path("etcd", "/etc/pgha/pki/etcd.key").is_file()
    assert changed(results(env, "pgha.etcd.clean", "etcd")) == []
