"""
Unit tests of the pgha runner (_runners/pgha.py): what it sequences and how
it answers. The loader's dunders come from ``configure_loader_modules``;
``__utils__`` holds the real shared code; the Salt client, the topology and
the cluster's readers are replaced by fakes, so each test checks what the
runner asks of whom and what an operator sees: the verdicts of ``check``,
the merged errors of ``validate``, one-line refusals of bad arguments with
nothing touched, and non-zero exits.
"""

from __future__ import annotations

import copy
import json
from typing import ClassVar

import pytest
import salt.config
from pgha_test_helpers import FakeReach, cluster_model, load, utils
from salt.exceptions import CommandExecutionError

runner = load("_runners", "pgha")
UTILS = ("pgha_cluster", "pgha_args", "pgha_drill", "pgha_probe", "pgha_faults", "pgha_rolling", "pgha_secrets", "pgha_fileserver",
         "pgha_model", "pgha_reach", "pgha_lock", "pgha_report", "pgha_runner")
SECRETS = {key: f"{key[:5]}-Pw-7c2e9a" for key in (
    "superuser_password", "replication_password", "admin_password", "restapi_password", "haproxy_stats_password",
    "probe_password", "etcd_root_password", "etcd_patroni_password", "etcd_lock_password")}

ADDRESSES = {"postgres01": "127.0.200.1", "postgres02": "127.0.200.2", "postgres03": "127.0.200.3",
             "etcd": "127.0.200.5", "haproxy": "127.0.200.9"}
# The cluster's model as the master builds it (pillar's drill and gates settings, every secret).
MODEL = cluster_model({"drill": {"timeout": 90}, "gates": {"max_lag_bytes": 1048576},
                       "patroni": {"ttl": 20, "loop_wait": 2, "retry_timeout": 5}},
                      addresses=ADDRESSES)


class FakeLock:
    """A lock taken: what the commands release; records who asked for it."""

    taken: ClassVar[list] = []

    def __init__(self, command: str, args: dict, wait):
        self.command, self.args, self.lost, self.shared, self.released = command, args, None, False, False
        FakeLock.taken.append(self)

    def release(self) -> bool:
        self.released = True
        return True


@pytest.fixture
def locks(monkeypatch) -> list:
    """The cluster's lock, taken without etcd; the locks taken, in order."""
    FakeLock.taken = []
    monkeypatch.setattr(runner, "_take", FakeLock)
    return FakeLock.taken


@pytest.fixture
def formula_tree(tmp_path):
    """A master's directories as docs/how-to/production.md documents them: the formula's salt/ served, pillar beside it, not in it."""
    (tmp_path / "salt" / "pgha").mkdir(parents=True)
    (tmp_path / "salt" / "pgha" / "init.sls").write_text("# the orchestration\n")
    (tmp_path / "pillar").mkdir()
    (tmp_path / "pillar" / "pgha_secrets.yaml").write_text(json.dumps({"pgha": {"secrets": SECRETS}}))
    (tmp_path / "cache").mkdir()
    return tmp_path


@pytest.fixture
def opts(formula_tree) -> dict:
    """The master's options: Salt's defaults with the documented file and pillar roots (a real file server)."""
    options = copy.deepcopy(salt.config.DEFAULT_MASTER_OPTS)
    options.update({"conf_file": "/etc/salt/master", "output": None, "id": "saltmaster_master",
                    "file_roots": {"base": [str(formula_tree / "salt")]},
                    "pillar_roots": {"base": [str(formula_tree / "pillar")]},
                    "cachedir": str(formula_tree / "cache")})
    return options


@pytest.fixture
def master_pillar() -> dict:
    """The master's own pillar: it is given every secret."""
    return {"pgha": {"secrets": dict(SECRETS)}}


@pytest.fixture
def configure_loader_modules(opts, master_pillar):
    def show_pillar(minion: str) -> dict:
        assert minion == "saltmaster_master"  # the master's own pillar, not a glob's
        return master_pillar

    shared = utils(*UTILS)
    return {runner: {"__opts__": opts, "__context__": {}, "__salt__": {"pillar.show_pillar": show_pillar},
                     "__utils__": shared},
            load("_utils", "pgha_runner"): {"__utils__": shared}}


def forbidden(what: str):
    def boom(*args, **kwargs):
        raise AssertionError(f"{what} must not be called here (args={args!r}, kwargs={kwargs!r})")

    return boom


@pytest.fixture
def untouchable(monkeypatch):
    """Anything that would reach a minion or the cluster fails the test."""
    monkeypatch.setattr(runner.salt.client, "get_local_client", forbidden("salt.client.get_local_client"))
    monkeypatch.setattr(runner, "_reach", forbidden("_reach"))
    monkeypatch.setattr(runner, "_cluster", forbidden("_cluster"))
    monkeypatch.setattr(runner, "_take", forbidden("_take (the cluster's lock)"))


def one_line(answer: dict, function: str) -> str:
    """The refusal's single line, whatever the outputter; asserts the exit code."""
    data = answer["data"] if "outputter" in answer else answer
    assert runner.__context__["retcode"] == 1
    assert data["retcode"] == 1
    assert set(data) == {f"pgha.{function}", "retcode"}
    line = data[f"pgha.{function}"]
    assert "\n" not in line and "Traceback" not in line
    return line


# ---------------------------------------------------------------------------
# arguments: checked before anything is touched, answered with one line
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("function", "kwargs", "expected"),
    [
        ("restart", {"timeout": "abc"}, "timeout must be a number of seconds (got 'abc')"),
        ("restart", {"timeout": 5}, "timeout must be between 10 and 3600 seconds (got 5)"),
        ("restart", {"what": "everything"}, "what must be one of postgresql, patroni (got 'everything')"),
        ("restart", {"pending_only": "maybe"}, "pending_only must be true or false (got 'maybe')"),
        ("reload", {"timeout": True}, "timeout must be a number of seconds (got True)"),
        ("write_check", {"timeout": -1}, "timeout must be between 1 and 3600 seconds (got -1)"),
        ("check", {"max_lag": -3}, "max_lag must be a whole number, 0 or more (got -3)"),
        ("status", {"table": "sometimes"}, "table must be true or false (got 'sometimes')"),
        ("validate", {"pillar": "ttl=10"}, "pillar must be a map"),
    ],
)
def test_bad_arguments_are_refused_in_one_line_before_anything_is_touched(untouchable, function, kwargs, expected):
    answer = getattr(runner, function)(**kwargs)
    assert expected in one_line(answer, function)


def test_drill_arguments_are_refused_before_the_fault_and_before_the_lock(monkeypatch):
    monkeypatch.setattr(runner, "_cluster", lambda: MODEL)
    monkeypatch.setattr(runner, "_reach", forbidden("_reach"))
    monkeypatch.setattr(runner, "_take", forbidden("_take (the cluster's lock)"))
    cases = {
        (("mode", "stop"), ("timeout", -5)): "timeout must be between 10 and 3600 seconds (got -5)",
        (("mode", "bogus"),): "mode must be one of stop, crash, switchover, freeze, dcs-outage",
        (("mode", "switchover"), ("candidate", "postgres09")): "candidate must be one of postgres01, postgres02",
        (("mode", "freeze"), ("freeze_s", 0)): "freeze_s must be between 1 and 3600 seconds (got 0)",
        (("mode", "dcs-outage"), ("outage_s", "long")): "outage_s must be a number of seconds (got 'long')",
        (("mode", "etcd-member-loss"), ("member", "etcd9")): "member must be one of etcd (got 'etcd9')",
        (("mode", "stop"), ("report", "yes")): "report must be true or false (got 'yes')",
        (("mode", "switchover"), ("path", "pooler")): "path=pooler needs PgBouncer (pgha:pgbouncer:enabled)",
        (("mode", "switchover"), ("path", "side")): "path must be one of leader, pooler (got 'side')",
    }
    for args, expected in cases.items():
        runner.__context__.clear()
        assert expected in one_line(runner.failover_drill(**dict(args)), "failover_drill"), args
    runner.__context__.clear()
    assert "candidate must be one of" in one_line(runner.switchover(candidate="nope"), "switchover")


def test_refusal_with_json_output_is_plain_data(untouchable, opts):
    opts["output"] = "json"
    assert runner.restart(timeout="abc") == {"pgha.restart": "timeout must be a number of seconds (got 'abc')",
                                             "retcode": 1}


def test_an_unreachable_cluster_or_a_bad_pillar_is_one_line_too(monkeypatch):
    def no_pillar():
        raise CommandExecutionError("pgha: the master's pillar has no pgha:nodes; does the pillar top target the master?")

    monkeypatch.setattr(runner, "_cluster", no_pillar)
    assert one_line(runner.check(), "check").startswith("pgha: the master's pillar has no pgha:nodes")


def test_the_master_builds_the_model_from_its_own_pillar_and_the_formulas_defaults(monkeypatch, opts, master_pillar):
    from pgha_test_helpers import SALT_DIR, read_pillar

    opts["file_roots"] = {"base": ["/nonexistent", str(SALT_DIR)]}
    master_pillar["pgha"] = dict(read_pillar("production")["pgha"], secrets=dict(SECRETS))
    cluster = runner._cluster()
    assert cluster.id == "saltmaster_master" and cluster.pg_nodes == ("postgres01", "postgres02", "postgres03")
    assert runner._cluster() is cluster  # once per command
    runner.__context__.clear()
    master_pillar["pgha"]["patroni"] = {"ttl": 5}
    with pytest.raises(CommandExecutionError, match="pgha:patroni:ttl: must be at least 20"):
        runner._cluster()


# ---------------------------------------------------------------------------
# check
# ---------------------------------------------------------------------------


def members(streaming03: bool = True, lag03: int = 0) -> list[dict]:
    return [
        {"name": "postgres01", "role": "leader", "state": "running", "timeline": 6, "lag": 0, "streaming": False,
         "pending_restart": False},
        {"name": "postgres02", "role": "sync_standby", "state": "streaming", "timeline": 6, "lag": 0,
         "streaming": True, "pending_restart": False},
        {"name": "postgres03", "role": "replica", "state": "streaming", "timeline": 6, "lag": lag03,
         "streaming": streaming03, "pending_restart": True},
    ]


@pytest.fixture
def cluster(monkeypatch):
    """check() against a settable status and probe; nothing reaches a minion or the network."""
    state = {
        "status": {"members": members(), "leader": "postgres01", "etcd": {"healthy": True, "endpoints": {}},
                   "haproxy": {"postgres": {"postgres01": "UP", "postgres02": "DOWN", "postgres03": "DOWN"}}},
        "probe": ("127.0.200.1", False),
        "rereads": [],  # the members each later read finds (the last one again when they run out)
    }
    monkeypatch.setattr(runner, "_cluster", lambda: MODEL)
    monkeypatch.setattr(runner, "_status_data", lambda reach: state["status"])
    monkeypatch.setattr(runner.time, "sleep", lambda seconds: None)

    def reread(reach):
        reads = state["rereads"] or [state["status"]["members"]]
        return reads.pop(0) if len(reads) > 1 else reads[0]

    monkeypatch.setattr(runner, "_members", reread)

    def probe(dsn: str):
        assert "user=pgha_probe" in dsn and "dbname=pgha" in dsn and "host=127.0.200.9" in dsn
        if isinstance(state["probe"], Exception):
            raise state["probe"]
        return state["probe"]

    # the verdict's probe is the drill module's own: replace it there
    monkeypatch.setattr(load("_utils", "pgha_probe"), "probe", probe)
    return state


def test_check_healthy(cluster):
    assert runner.check() == {"healthy": True, "problems": [], "leader": "postgres01"}
    assert "retcode" not in runner.__context__


def test_check_unhealthy_lists_every_problem_and_exits_non_zero(cluster):
    cluster["status"]["members"] = members(streaming03=False)
    cluster["status"]["etcd"] = {"healthy": False, "error": "pgha: minion etcd did not answer", "endpoints": {}}
    result = runner.check()
    assert result["healthy"] is False
    assert result["problems"] == ["postgres03 does not stream from the leader postgres01",
                                  "etcd is not healthy: pgha: minion etcd did not answer"]
    assert result["retcode"] == 1 and runner.__context__["retcode"] == 1


def test_check_lag_bound_from_gates_or_argument(cluster):
    cluster["status"]["members"] = members(lag03=2048)
    assert runner.check()["healthy"] is True  # within the pillar's 1 MiB
    assert runner.check(max_lag=1024)["problems"] == ["postgres03 lags 2048 bytes (bound 1024)"]


def test_check_a_lag_that_passes_is_no_problem(cluster):
    # a record in flight (archive_timeout's WAL switch) lags a replica for an instant
    cluster["status"]["members"] = members(lag03=56)
    cluster["rereads"] = [members(lag03=56), members(lag03=0)]
    assert runner.check(max_lag=0) == {"healthy": True, "problems": [], "leader": "postgres01"}


def test_check_a_lag_that_lasts_is_a_problem(cluster):
    cluster["status"]["members"] = members(lag03=56)
    result = runner.check(max_lag=0)
    assert result["problems"] == ["postgres03 lags 56 bytes (bound 0)"] and result["retcode"] == 1


def test_check_probe_must_reach_the_writable_leader(cluster):
    cluster["probe"] = ("127.0.200.2", True)
    assert runner.check()["problems"] == ["HAProxy's leader port reached 127.0.200.2, a server in recovery"]
    cluster["probe"] = ("127.0.200.3", False)
    assert runner.check()["problems"] == ["HAProxy's leader port reached 127.0.200.3, not the leader at 127.0.200.1"]


def test_check_probe_that_cannot_log_in(cluster):
    import psycopg

    cluster["probe"] = psycopg.OperationalError('password authentication failed for user "pgha_probe"')
    (problem,) = runner.check()["problems"]
    assert problem.startswith("the probe role cannot query through HAProxy: password authentication failed")


def test_status_as_table_or_data(cluster, opts):
    cluster["status"]["members"][0]["patroni_version"] = "4.1.5"
    answer = runner.status()
    assert answer["outputter"] == "txt" and answer["data"].startswith("Patroni members")
    assert "4.1.5" in answer["data"]
    opts["output"] = "json"
    assert runner.status() == cluster["status"]
    assert runner.status(table=True)["outputter"] == "txt"


# ---------------------------------------------------------------------------
# validate
# ---------------------------------------------------------------------------


class FakeLocalClient:
    """Stands in for salt.client.get_local_client and its client; records every cmd call."""

    def __init__(self, answers: dict) -> None:
        self.answers, self.calls, self.conf_files = answers, [], []

    def __call__(self, conf_file=None, **kwargs):
        self.conf_files.append(conf_file)
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def cmd(self, tgt, fun, arg=(), timeout=None, full_return=False, kwarg=None, tgt_type="glob", **kwargs):
        self.calls.append({"tgt": tgt, "fun": fun, "arg": list(arg), "kwarg": kwarg, "timeout": timeout,
                           "tgt_type": tgt_type})
        return json.loads(json.dumps(self.answers))


@pytest.fixture
def minions(monkeypatch):
    def install(answers: dict) -> FakeLocalClient:
        fake = FakeLocalClient(answers)
        monkeypatch.setattr(runner.salt.client, "get_local_client", fake)
        return fake

    return install


def test_validate_merges_errors_without_duplicates(minions):
    fake = minions({
        "postgres02": {"ret": {"valid": False, "errors": ["pgha:patroni:ttl: must be at least 20",
                                                          "pgha:nodes:etcd03:address: not an IP address"]},
                       "retcode": 1},
        "postgres01": {"ret": {"valid": False, "errors": ["pgha:patroni:ttl: must be at least 20"]}, "retcode": 1},
        "etcd": {"ret": {"valid": True, "errors": []}, "retcode": 0},
    })
    assert runner.validate() == {
        "valid": False,
        "errors": ["pgha:patroni:ttl: must be at least 20", "pgha:nodes:etcd03:address: not an IP address"],
        "minions": ["etcd", "postgres01", "postgres02"],
        "retcode": 1,
    }
    assert fake.conf_files == ["/etc/salt/master"]
    assert [(c["tgt"], c["fun"], c["kwarg"]) for c in fake.calls] == [("*", "pgha_config.validate", None)]


def test_validate_passes_the_change_and_the_target(minions):
    fake = minions({"postgres01": {"ret": {"valid": True, "errors": []}, "retcode": 0}})
    change = {"pgha": {"patroni": {"ttl": 10}}}
    assert runner.validate(pillar=change, tgt="postgres*")["valid"] is True
    assert (fake.calls[0]["tgt"], fake.calls[0]["kwarg"]) == ("postgres*", {"pillar": change})
    assert "retcode" not in runner.__context__


def test_validate_no_minion_or_a_minion_that_cannot_validate(minions):
    minions({})
    assert runner.validate(tgt="pg*")["errors"] == ["no minion matching 'pg*' answered"]
    minions({"postgres01": {"ret": "'pgha_config.validate' is not available.", "retcode": 1}})
    result = runner.validate()
    assert result["errors"] == ["postgres01: could not validate: 'pgha_config.validate' is not available."]
    assert runner.__context__["retcode"] == 1


def test_validate_names_a_listed_minion_that_did_not_answer(minions):
    fake = minions({"postgres01": {"ret": {"valid": True, "errors": []}, "retcode": 0}})
    result = runner.validate(tgt=["postgres01", "haproxy"], tgt_type="list")
    assert result["errors"] == ["haproxy: did not answer"]
    assert (fake.calls[0]["tgt"], fake.calls[0]["tgt_type"]) == (["postgres01", "haproxy"], "list")


def test_validate_checks_every_secret_on_the_master(minions, master_pillar):
    """Each minion checks the secrets of its roles; the master, which is given them all, checks every one."""
    minions({"haproxy": {"ret": {"valid": True, "errors": []}, "retcode": 0}})
    del master_pillar["pgha"]["secrets"]["etcd_root_password"]
    master_pillar["pgha"]["secrets"]["probe_password"] = "changeme"
    result = runner.validate()
    assert result["errors"] == ["pgha:secrets:probe_password: a well-known demo password; choose another",
                                "pgha:secrets:etcd_root_password: required, must be a non-empty string"]
    # with etcd's access control off, its two secrets are not needed
    result = runner.validate(pillar={"pgha": {"etcd": {"auth": {"enabled": False}},
                                              "secrets": {"probe_password": "Probe-Pw-91ab"}}})
    assert result == {"valid": True, "errors": [], "minions": ["haproxy"]}


def test_validate_refuses_a_file_server_that_serves_the_pillar(minions, opts, formula_tree):
    """The old layout (the repository's root a file root, pillar under it): refused, the files named."""
    minions({"haproxy": {"ret": {"valid": True, "errors": []}, "retcode": 0}})
    assert runner.validate()["valid"] is True  # the documented layout: salt/ only
    opts["file_roots"]["base"].append(str(formula_tree))
    result = runner.validate()
    assert result["valid"] is False and runner.__context__["retcode"] == 1
    [line] = result["errors"]
    pillar = formula_tree / "pillar"
    assert f"under the pillar root {pillar}" in line
    # the file holding the passwords is named first, and no password is shown
    assert f"salt://pillar/pgha_secrets.yaml ({pillar / 'pgha_secrets.yaml'}, holds secrets)" in line
    assert not any(value in line for value in SECRETS.values())


def test_validate_refuses_a_served_file_that_holds_a_secret(minions, formula_tree):
    minions({"haproxy": {"ret": {"valid": True, "errors": []}, "retcode": 0}})
    (formula_tree / "salt" / "notes.txt").write_text(f"the admin password is {SECRETS['admin_password']}\n")
    [line] = runner.validate()["errors"]
    assert line.startswith(f"the master's file server serves salt://notes.txt ({formula_tree / 'salt' / 'notes.txt'}), "
                           "which holds the value of pgha:secrets:admin_password")
    assert SECRETS["admin_password"] not in line


# ---------------------------------------------------------------------------
# calling minions, the drill, the rolling operations
# ---------------------------------------------------------------------------


def test_call_returns_the_minions_answer_or_raises_its_message(minions):
    fake = minions({"postgres01": {"ret": {"running": True}, "retcode": 0}})
    call = load("_utils", "pgha_reach").caller("/etc/salt/master")
    assert call("postgres01", "pgha_service.start", "patroni", wait=45) == {"running": True}
    assert fake.calls == [{"tgt": "postgres01", "fun": "pgha_service.start", "arg": ["patroni"], "kwarg": None,
                           "timeout": 45, "tgt_type": "glob"}]
    minions({"postgres01": {"ret": "pgha_service: patroni is not running; nothing to crash", "retcode": 1}})
    with pytest.raises(CommandExecutionError, match="pgha_service.crash on postgres01 failed: pgha_service: patroni"):
        call("postgres01", "pgha_service.crash", "patroni")
    minions({})
    with pytest.raises(CommandExecutionError, match="minion postgres01 did not answer patroni.reload within 60 s"):
        call("postgres01", "patroni.reload")


def test_failover_drill_hands_the_engine_the_options_under_the_lock_and_fails_with_it(monkeypatch, locks):
    monkeypatch.setattr(runner, "_cluster", lambda: MODEL)
    monkeypatch.setattr(runner, "_reach", lambda cluster=None: FakeReach(MODEL))
    seen = {}

    def engine(reach, mode, options, alerts=False):
        seen.update(mode=mode, options=options, alerts=alerts,
                    locked=[lock.command for lock in locks if not lock.released])
        return {"ok": False, "problems": ["3 acknowledged writes lost"]}

    options_of, _ = load("_utils", "pgha_runner").driller()  # the real argument checks and options
    monkeypatch.setattr(runner, "_driller", lambda: (options_of, engine))
    result = runner.failover_drill(mode="freeze")
    assert seen["mode"] == "freeze" and seen["locked"] == ["pgha.failover_drill"]
    options = seen["options"]
    assert options.freeze_s == 30  # ttl + 10, the model's derived default
    assert options.outage_s == 40 and options.timeout == 90
    assert options.report_dir == "/var/lib/pgha/reports"
    assert "user=pgha_probe" in options.dsn and "dbname=pgha" in options.dsn and "host=127.0.200.9" in options.dsn
    assert result["retcode"] == 1 and runner.__context__["retcode"] == 1
    assert locks[-1].released and locks[-1].args["mode"] == "freeze"
    runner.switchover(candidate="postgres02", timeout=30)
    options = seen["options"]
    assert seen["mode"] == "switchover" and options.report_dir is None and options.timeout == 30
    assert options.candidate == "postgres02" and seen["locked"] == ["pgha.switchover"]


def test_a_locked_cluster_refuses_a_second_command_in_one_line_and_touches_nothing(monkeypatch):
    monkeypatch.setattr(runner, "_cluster", lambda: MODEL)
    monkeypatch.setattr(runner, "_reach", forbidden("_reach"))
    holder = {"command": "pgha.failover_drill", "args": {"mode": "switchover"}, "master": "m1", "pid": 4242,
              "host": "salt1", "since": "2026-12-04T10:00:00Z"}

    lock_util = load("_utils", "pgha_lock")

    def busy(etcd, key, record, ttl, wait):
        assert key == "/db/postgres/pgha-lock" and record["command"] == "pgha.switchover" and wait == 0
        raise lock_util.Busy(holder)

    shared_runner = load("_utils", "pgha_runner")
    real = shared_runner._util
    fake_lock = type("FakeLockUtil", (), {"holder_record": staticmethod(lock_util.holder_record),
                                          "of": staticmethod(lock_util.of), "acquire": staticmethod(busy)})
    monkeypatch.setattr(shared_runner, "_util", lambda name: fake_lock if name == "pgha_lock" else real(name))
    line = one_line(runner.switchover(), "switchover")
    assert line.startswith("the cluster is locked by pgha.failover_drill mode=switchover (master m1, pid 4242 on "
                           "salt1, since 2026-12-04T10:00:00Z)")
    assert line.endswith("nothing was done (wait=<seconds> to wait for it)")


def test_rolling_restart_acts_through_the_members_minions_under_the_lock(monkeypatch, locks):
    monkeypatch.setattr(load("_utils", "pgha_rolling"), "GATE_POLL", 0)
    calls = []

    def act(minion, *args, **kwargs):
        calls.append((minion, *args))
        return {"restarted": True}

    fake = FakeReach(MODEL, members, {"patroni.restart": act, "pgha_service.restart": act})
    monkeypatch.setattr(runner, "_cluster", lambda: MODEL)
    monkeypatch.setattr(runner, "_reach", lambda cluster=None: fake)
    monkeypatch.setattr(runner, "_driller", lambda: (lambda cluster, given: given,
                                                    lambda reach, mode, options: {"ok": True, "mode": mode}))
    result = runner.restart()  # only postgres03 has a restart pending
    assert result["ok"] is True and result["done"] == ["postgres03"]
    assert result["pending_restart_before"] == ["postgres03"]
    assert fake.calls == [("postgres03", "patroni.restart", ("pending_only", True), ("timeout", 120))]
    assert [lock.command for lock in locks] == ["pgha.restart"] and locks[0].released
    calls.clear()
    result = runner.restart(what="patroni")
    assert calls == [("postgres02", "patroni"), ("postgres03", "patroni"), ("postgres01", "patroni")]
    assert result["steps"][2] == {"switchover": {"old_leader": None, "new_leader": None, "rto_s": None,
                                                 "lost": None, "ok": True}}
