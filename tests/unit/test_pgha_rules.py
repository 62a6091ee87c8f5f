"""
Unit tests of _utils/pgha_rules.py: each rule between pillar keys on its
own, holding on the production pillar and broken by the smallest change
that breaks it, its problem naming the key a DBA must change.
"""

from __future__ import annotations

import copy

import pytest
import yaml
from pgha_test_helpers import SALT_DIR, TEST_SECRETS, load, read_pillar

rules = load("_utils", "pgha_rules")
model = load("_utils", "pgha_model")
secrets_policy = load("_utils", "pgha_secrets")
schedule = load("_utils", "pgha_schedule")
DEFAULTS = yaml.safe_load((SALT_DIR / "pgha" / "parameters" / "defaults.yaml").read_text())


@pytest.fixture
def cfg() -> dict:
    """The production pillar with secrets, merged with the defaults: every rule holds."""
    given = read_pillar("production")["pgha"]
    given["secrets"] = dict(TEST_SECRETS)
    return model.merge(DEFAULTS, given)


def changed(cfg: dict, **sections) -> dict:
    """cfg with sections merged in (``nodes={...}`` etc.)."""
    return model.merge(cfg, sections)


def run(rule, cfg: dict, **context) -> list[str]:
    return rule(cfg, **context)


def test_every_rule_holds_on_the_production_pillar(cfg):
    context = {"given": {}, "modes": ["stop"], "secrets": secrets_policy, "roles": None, "schedule": schedule}
    assert {rule.__name__: rule(cfg, **context) for rule in rules.RULES} == {rule.__name__: [] for rule in rules.RULES}


def test_rules_have_distinct_names_and_documents():
    names = [rule.__name__ for rule in rules.RULES]
    assert len(names) == len(set(names)) >= 20


def test_node_entries(cfg):
    bad = changed(cfg, nodes={"postgres01": {"address": "0.0.0.0", "roles": ["postgresql", "postgresql"]},
                              "bad id!": {"address": "10.0.0.9", "roles": ["etcd"]}})
    found = run(rules.node_entries, bad)
    assert "pgha:nodes:postgres01:address: must be the node's own unicast address (got 0.0.0.0)" in found
    assert "pgha:nodes:postgres01:roles: a role is listed twice" in found
    assert "pgha:nodes:bad id!: not a valid minion id" in found
    cfg["nodes"] = {}
    assert run(rules.node_entries, cfg) == ["pgha:nodes: must map each minion id to its address and roles; none given"]


def test_every_role_present(cfg):
    del cfg["nodes"]["haproxy"]
    assert run(rules.every_role_present, cfg) == ["pgha:nodes: no node has the role 'haproxy'; the cluster needs one"]


def test_odd_etcd_members(cfg):
    cfg["nodes"]["postgres01"]["roles"].append("etcd")
    assert run(rules.odd_etcd_members, cfg)[0].startswith("pgha:nodes: 2 etcd members; use an odd number")
    cfg["nodes"]["postgres02"]["roles"].append("etcd")
    assert run(rules.odd_etcd_members, cfg) == []


def test_bootstrap_leader_is_a_postgresql_node(cfg):
    cfg["cluster"]["bootstrap_leader"] = "etcd"
    assert run(rules.bootstrap_leader_is_a_postgresql_node, cfg) == [
        ("pgha:cluster:bootstrap_leader: 'etcd' is not a postgresql node "
        "(postgresql nodes: postgres01, postgres02, postgres03)")]


@pytest.mark.parametrize(("change", "named", "words"), [
    ({"patroni": {"restapi_port": 5432}}, "pgha:nodes:postgres01", ("Patroni REST API on 10.131.0.15:5432 collides "
                                                                   "with PostgreSQL of postgres01")),
    ({"haproxy": {"sync": {"port": 5001}}}, "pgha:nodes:haproxy", ("HAProxy's sync port on 10.131.0.3:5001 collides "
                                                                  "with HAProxy's replicas port of haproxy")),
    ({"pgbouncer": {"enabled": True, "port": 8080}}, "pgha:nodes:haproxy", "PgBouncer on 10.131.0.3:8080 collides"),
])
def test_ports_distinct(cfg, change, named, words):
    found = run(rules.ports_distinct, changed(cfg, **change))
    assert found and found[0].startswith(f"{named}: {words}"), found
    # a port that is switched off collides with nothing
    assert run(rules.ports_distinct, changed(cfg, haproxy={"sync": {"port": 5001, "enabled": False}})) == []


def test_patroni_timings_fit(cfg):
    cfg["patroni"].update(ttl=25, loop_wait=10, retry_timeout=10)
    assert run(rules.patroni_timings_fit, cfg) == [
        "pgha:patroni:ttl: loop_wait + 2*retry_timeout must not exceed ttl (10 + 2*10 > 25)"]
    cfg["patroni"]["ttl"] = 30
    assert run(rules.patroni_timings_fit, cfg) == []


def test_restapi_tls_needs_postgresql_tls(cfg):
    cfg["postgresql"]["tls"].update(enabled=False, require_clients=False, require_replication=False)
    assert run(rules.restapi_tls_needs_postgresql_tls, cfg)[0].startswith("pgha:patroni:restapi_tls:")
    cfg["patroni"]["restapi_tls"] = False
    assert run(rules.restapi_tls_needs_postgresql_tls, cfg) == []


def test_strict_needs_synchronous(cfg):
    cfg["patroni"]["synchronous_mode_strict"] = True
    assert run(rules.strict_needs_synchronous, cfg) == [
        "pgha:patroni:synchronous_mode_strict: needs patroni:synchronous_mode: true or quorum"]


def test_quorum_leaves_a_voter_when_one_node_is_down(cfg):
    quorum = changed(cfg, patroni={"synchronous_mode": "quorum", "synchronous_node_count": 1})
    assert run(rules.synchronous_count_fits, quorum) == []
    assert run(rules.strict_needs_synchronous, changed(quorum, patroni={"synchronous_mode_strict": True})) == []
    two = changed(quorum, patroni={"synchronous_node_count": 2})
    assert run(rules.synchronous_count_fits, two) == [
        ("pgha:patroni:synchronous_node_count: 2 with synchronous_mode quorum and 3 PostgreSQL nodes leaves no voter "
        "when one is down: at most 1")]
    nodes = {name: node for name, node in quorum["nodes"].items() if name != "postgres03"}
    small = dict(quorum, nodes=nodes, cluster=dict(quorum["cluster"]))
    assert "quorum needs three nodes or more" in run(rules.synchronous_count_fits, small)[0]
    assert run(rules.synchronous_count_fits, changed(cfg, patroni={"synchronous_node_count": 5})) == []  # off


def test_patroni_version_safe(cfg):
    cfg["patroni"]["version"] = "3.0.2"
    assert "lose acknowledged writes" in run(rules.patroni_version_safe, cfg)[0]
    cfg["patroni"]["allow_unsafe_version"] = True
    assert run(rules.patroni_version_safe, cfg) == []


def test_watchdog_required_needs_systemd(cfg):
    cfg["patroni"]["watchdog"]["mode"] = "required"
    assert run(rules.watchdog_required_needs_systemd, cfg) == []
    cfg["lookup"]["service_manager"] = "supervisord"
    assert run(rules.watchdog_required_needs_systemd, cfg)[0].startswith("pgha:patroni:watchdog:mode: required")


def test_watchdog_timeout_fits(cfg):
    cfg["patroni"]["watchdog"]["safety_margin"] = 25
    assert "(ttl - safety_margin = 5 s) must be at least loop_wait (10 s)" in run(rules.watchdog_timeout_fits, cfg)[0]
    cfg["patroni"]["watchdog"]["mode"] = "off"
    assert run(rules.watchdog_timeout_fits, cfg) == []


def test_pip_install_settings(cfg):
    given = {"lookup": {"patroni": {"binary": "/usr/bin/patroni"}}}
    cfg["lookup"]["patroni"]["pip"].update(wheel_dir="/srv/wheels", index_url="https://pypi.example.com/simple")
    found = run(rules.pip_install_settings, cfg, given=given)
    assert [line.split(": ")[0] for line in found] == ["pgha:lookup:patroni:binary", "pgha:lookup:patroni:pip:wheel_dir"]
    cfg["lookup"]["patroni"]["install"] = "package"
    assert run(rules.pip_install_settings, cfg, given=given) == []


def test_package_install_needs_a_package(cfg):
    cfg["lookup"]["patroni"].update(install="package", pkgs=[])
    assert run(rules.package_install_needs_a_package, cfg)[0].startswith("pgha:lookup:patroni:pkgs:")


def test_unit_file_named_after_the_service(cfg):
    cfg["lookup"]["patroni"]["unit_file"] = "/etc/systemd/system/pg.service"
    assert "(patroni.service; got pg.service)" in run(rules.unit_file_named_after_the_service, cfg)[0]


def test_tls_files(cfg):
    cfg["etcd"]["tls"]["key_file"] = cfg["etcd"]["tls"]["cert_file"]
    cfg["postgresql"]["tls"].update(enabled=False)
    found = run(rules.tls_files, cfg)
    assert "pgha:etcd:tls:key_file: the same file as etcd:tls:cert_file" in found
    assert "pgha:postgresql:tls:require_clients: needs postgresql:tls:enabled true" in found


def test_hba_entries(cfg):
    cfg["postgresql"]["pg_hba"] = [
        {"type": "local", "database": "all", "user": "all", "address": "10.0.0.0/8", "method": "md5"},
        {"type": "host", "database": "app", "user": "app", "address": "10.1.0.0/16", "method": "peer"},
        {"type": "host", "database": "app", "user": "app", "method": "trust"},
    ]
    found = run(rules.hba_entries, cfg)
    assert "pgha:postgresql:pg_hba:0:address: not allowed for type local" in found
    assert "pgha:postgresql:pg_hba:1:method: peer works only with type local" in found
    assert "pgha:postgresql:pg_hba:2:address: required for type 'host'" in found
    assert any(line.startswith("pgha:postgresql:pg_hba:2:method:") and "trust and password are refused" in line
               for line in found)


def test_etcd_users_of_their_own(cfg):
    cfg["users"]["etcd_patroni"] = "root"
    assert run(rules.etcd_users_of_their_own, cfg)[0].startswith("pgha:users:etcd_patroni: must not be root")
    cfg["users"]["etcd_patroni"] = cfg["users"]["etcd_lock"]
    assert run(rules.etcd_users_of_their_own, cfg)[0].startswith(
        "pgha:users:etcd_lock: the same etcd user as users:etcd_patroni")


def test_postgresql_roles_distinct(cfg):
    """One PostgreSQL role cannot be both the probe (no rights) and the superuser, say."""
    cfg["users"]["probe"] = cfg["users"]["superuser"]
    assert run(rules.postgresql_roles_distinct, cfg) == [
        ("pgha:users:probe: 'postgres' is already users:superuser; each PostgreSQL role the formula makes must have "
        "a name of its own")]
    # etcd's Patroni user and the REST API's user live elsewhere: the same name is fine
    ok = copy.deepcopy(cfg)
    ok["users"]["probe"] = "pgha_probe"
    ok["users"]["restapi"] = ok["users"]["etcd_patroni"]
    assert run(rules.postgresql_roles_distinct, ok) == []


def test_probe_database_is_not_the_users(cfg):
    cfg["probe"]["database"] = cfg["users"]["admin"]
    assert run(rules.probe_database_is_not_the_users, cfg)[0].startswith("pgha:probe:database: 'admin'")


def test_drill_mode_known(cfg):
    cfg["drill"]["mode"] = "nuke"
    assert run(rules.drill_mode_known, cfg, modes=["stop", "crash"]) == [
        "pgha:drill:mode: must be one of stop, crash (got 'nuke')"]


def test_secrets_of_the_roles(cfg):
    del cfg["secrets"]["haproxy_stats_password"]
    everyone = run(rules.secrets_of_the_roles, cfg, secrets=secrets_policy, roles=None)
    assert everyone == ["pgha:secrets:haproxy_stats_password: required, must be a non-empty string"]
    assert run(rules.secrets_of_the_roles, cfg, secrets=secrets_policy, roles=["postgresql"]) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [("patroni 4.1.5", (4, 1, 5)), ("3.0.2-1", (3, 0, 2)), ("1:3.0.2-1+b1", (3, 0, 2)), ("4.1", (4, 1)),
     ("", None), (None, None), ("patroni", None)],
)
def test_version_tuple(text, expected):
    assert rules.version_tuple(text) == expected


# ---------------------------------------------------------------------------
# backups
# ---------------------------------------------------------------------------


def test_one_backup_node_apart_from_the_postgresql_nodes(cfg):
    assert run(rules.one_backup_node_apart, cfg) == []
    two = changed(cfg, nodes={"backup2": {"address": "10.131.0.10", "roles": ["backup"]}})
    assert run(rules.one_backup_node_apart, two) == [
        "pgha:nodes: 2 nodes have the role backup (backup, backup2); the repository lives on one"]
    inside = changed(cfg, nodes={"backup": {"roles": ["backup", "postgresql"]}})
    assert run(rules.one_backup_node_apart, inside) == [
        ("pgha:nodes:backup:roles: backup and postgresql on one node; the repository must not live on a host whose "
        "loss it protects against")]


def test_backup_schedule(cfg):
    bad = changed(cfg, backup={"schedule": {"diff": "Sat..Mon 01:00", "incr": "hourly please"}})
    found = run(rules.backup_schedule, bad, schedule=schedule)
    assert found[0].startswith("pgha:backup:schedule:diff: the range 'Sat..Mon' runs backwards")
    assert found[1].startswith("pgha:backup:schedule:incr: 'hourly' is not a day or a range of days")
    off = changed(cfg, backup={"schedule": {"full": None, "diff": None, "incr": None}})
    assert run(rules.backup_schedule, off, schedule=schedule) == [
        ("pgha:backup:schedule: no type is scheduled; schedule one, or set backup:max_age_hours for the backups you "
        "take yourself (pgha.check needs a bound)")]
    assert run(rules.backup_schedule, changed(off, backup={"max_age_hours": 30}), schedule=schedule) == []


def test_pgbackrests_port_collides_with_nothing(cfg):
    found = run(rules.ports_distinct, changed(cfg, backup={"port": 8008}))
    assert "pgha:nodes:postgres01: pgBackRest's server on 10.131.0.15:8008 collides with Patroni REST API of " \
           "postgres01" in found


def test_pgbackrests_tls_files_whenever_there_is_a_backup_node(cfg):
    bad = changed(cfg, backup={"tls": {"key_file": "/etc/pgha/pki/pgbackrest.crt"}})
    assert run(rules.tls_files, bad) == [
        "pgha:backup:tls:key_file: the same file as backup:tls:cert_file"]


def test_the_repositorys_passphrase_goes_to_its_users_only(cfg):
    del cfg["secrets"]["backup_cipher_password"]
    problem = ["pgha:secrets:backup_cipher_password: required, must be a non-empty string"]
    for roles, expected in ((["backup"], problem), (["postgresql"], problem), (["etcd"], []), (["haproxy"], [])):
        assert run(rules.secrets_of_the_roles, cfg, secrets=secrets_policy, roles=roles) == expected, roles
    assert run(rules.secrets_of_the_roles, changed(cfg, backup={"cipher_type": "none"}), secrets=secrets_policy,
               roles=None) == []
