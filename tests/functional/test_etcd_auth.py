"""
etcd authentication and TLS against a real etcd: the etcd_cluster module's
auth_ensure / auth_status and the etcd_cluster.auth_configured state, on an
etcd member of its own (127.0.101.5, https for clients and peers, certificates
from the lab's stand-in PKI). The pillar model (pgha_config.mapdata) is given
to the module through ``configure_loader_modules``; everything else is the
real etcd. The tests run in order: each leaves etcd as the next expects.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import pytest
from pgha_test_helpers import load, utils
from salt.exceptions import CommandExecutionError

from lab import pki

ADDRESS = "127.0.101.5"
ROOT_PW = "Root-auth-9c1d2e3f4a"
PATRONI_PW = "Pat-auth-5b6c7d8e9f"
LOCK_PW = "Lock-auth-2e4f6a8c0b"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

etcd_module = load("_modules", "etcd_cluster")
etcd_states = load("_states", "etcd_cluster")
# What pgha_config.mapdata gives the module; the tests change it in turn.
MODEL: dict = {}


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((ADDRESS, port)) == 0


@pytest.fixture(scope="module")
def etcd_tls(tmp_path_factory):
    """A one-member etcd over TLS; yields the CA's path on 'the host'."""
    if _listening(2379):
        pytest.fail(f"{ADDRESS}:2379 is in use: another test run of this file is up", pytrace=False)
    base = tmp_path_factory.mktemp("etcd-auth")
    hosts = base / "hosts"
    pki.place(str(base / "ca"), lambda node_id: str(hosts / node_id), {"etcd": {"address": ADDRESS, "roles": ["etcd"]}})
    paths = {key: str(hosts / "etcd") + value for key, value in pki.tls_paths().items()}
    url = f"https://{ADDRESS}"
    log = open(base / "etcd.log", "w")  # noqa: SIM115
    proc = subprocess.Popen(
        [
            "etcd", "--name", "etcd", "--data-dir", str(base / "data"),
            "--listen-client-urls", f"{url}:2379", "--advertise-client-urls", f"{url}:2379",
            "--listen-peer-urls", f"{url}:2380", "--initial-advertise-peer-urls", f"{url}:2380",
            "--initial-cluster", f"etcd={url}:2380",
            "--cert-file", paths["cert_file"], "--key-file", paths["key_file"],
            "--peer-cert-file", paths["cert_file"], "--peer-key-file", paths["key_file"],
            "--peer-trusted-ca-file", paths["ca_file"], "--peer-client-cert-auth",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while not _listening(2379):
        assert proc.poll() is None and time.monotonic() < deadline, (base / "etcd.log").read_text()[-2000:]
        time.sleep(0.2)
    MODEL.clear()
    MODEL.update(model(paths["ca_file"]))
    yield {"ca_file": paths["ca_file"], "log": base / "etcd.log"}
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


def model(ca_file: str | None, auth: bool = True, root_pw: str = ROOT_PW, patroni_pw: str = PATRONI_PW) -> dict:
    return {
        "id": "etcd",
        "etcd_nodes": ["etcd"],
        "nodes": {"etcd": {"address": ADDRESS, "roles": ["etcd"]}},
        "etcd": {
            "client_port": 2379,
            "peer_port": 2380,
            "auth": {"enabled": auth},
            "tls": {"enabled": ca_file is not None, "ca_file": ca_file or ""},
        },
        "cluster": {"scope": "postgres", "namespace": "/db/"},
        "users": {"etcd_patroni": "patroni", "etcd_lock": "pgha_lock"},
        "secrets": {"etcd_root_password": root_pw, "etcd_patroni_password": patroni_pw,
                    "etcd_lock_password": LOCK_PW},
    }


@pytest.fixture
def configure_loader_modules(etcd_tls):
    return {
        etcd_module: {"__salt__": {"pgha_config.mapdata": lambda **kwargs: dict(MODEL)}, "__context__": {},
                      "__utils__": utils("pgha_etcd_auth")},
        etcd_states: {
            "__salt__": {"etcd_cluster.auth_ensure": etcd_module.auth_ensure, "etcd_cluster.health": etcd_module.health},
            "__opts__": {"test": False},
        },
    }


@pytest.fixture
def mods():
    return etcd_module, etcd_states


def set_model(module, **kwargs) -> None:
    ca_file = kwargs.pop("ca_file", MODEL["etcd"]["tls"]["ca_file"] or None)
    MODEL.update(model(ca_file, **kwargs))


def client(ca_file: str, user: str | None = None, password: str | None = None):
    import etcd3

    return etcd3.client(host=ADDRESS, port=2379, ca_cert=ca_file, timeout=3, user=user, password=password)


def test_health_over_tls(mods):
    module, _ = mods
    health = module.health()
    assert health["healthy"] is True, health
    assert health["endpoints"]["etcd"]["version"].startswith("3.")


def test_plain_http_is_refused(mods, etcd_tls):
    module, _ = mods
    set_model(module, ca_file=None)
    try:
        health = module.health()
    finally:
        set_model(module, ca_file=etcd_tls["ca_file"])
    assert health["healthy"] is False
    assert health["endpoints"]["etcd"]["reachable"] is False


def test_state_in_test_mode_changes_nothing(mods):
    module, state = mods
    state.__opts__["test"] = True
    try:
        ret = state.auth_configured("postgres")
    finally:
        state.__opts__["test"] = False
    assert ret["result"] is None, ret
    assert "authentication enabled" in ret["changes"]["etcd_auth"]
    assert module.auth_status()["enabled"] is False


def test_state_enables_authentication(mods, etcd_tls):
    _, state = mods
    ret = state.auth_configured("postgres")
    assert ret["result"] is True, ret
    assert ret["changes"]["etcd_auth"] == [
        "user root created, with role root",
        "role pgha-postgres created: read and write /db/postgres/*",
        "user patroni created, with role pgha-postgres",
        "role pgha-postgres-lock created: read and write /db/postgres/pgha-lock",
        "user pgha_lock created, with role pgha-postgres-lock",
        "authentication enabled",
    ]
    text = repr(ret)
    assert ROOT_PW not in text and PATRONI_PW not in text and LOCK_PW not in text


def test_state_is_idempotent(mods):
    _, state = mods
    ret = state.auth_configured("postgres")
    assert ret == {
        "name": "postgres",
        "changes": {},
        "result": True,
        "comment": "etcd authentication on; users, role and passwords as in pillar",
    }


def test_status_lists_users_and_roles(mods):
    module, _ = mods
    status = module.auth_status()
    assert status["enabled"] is True
    assert status["users"] == {"patroni": ["pgha-postgres"], "pgha_lock": ["pgha-postgres-lock"], "root": ["root"]}
    assert status["roles"]["pgha-postgres"] == [{"type": "READWRITE", "key": "/db/postgres/", "range_end": "/db/postgres0"}]
    assert status["roles"]["pgha-postgres-lock"] == [{"type": "READWRITE", "key": "/db/postgres/pgha-lock",
                                                      "range_end": ""}]


def test_anonymous_requests_are_refused(etcd_tls):
    anonymous = client(etcd_tls["ca_file"])
    with pytest.raises(Exception) as info:
        anonymous.put("/db/postgres/x", "1")
    assert "user name is empty" in str(info.value.__context__ or info.value)


def test_patroni_user_reads_and_writes_only_its_cluster(etcd_tls):
    patroni = client(etcd_tls["ca_file"], "patroni", PATRONI_PW)
    patroni.put("/db/postgres/leader", "postgres01")
    assert patroni.get("/db/postgres/leader")[0] == b"postgres01"
    with pytest.raises(Exception) as info:
        patroni.put("/db/other/leader", "x")
    assert "permission denied" in str(info.value.__context__ or info.value)


def test_the_lock_on_a_real_etcd_its_user_writing_its_key_only(etcd_tls, monkeypatch):
    """The cluster's lock (pgha_lock, etcd's JSON gateway over TLS) as the lock's own user: taken, refused, freed."""
    lock = load("_utils", "pgha_lock")
    monkeypatch.delenv(lock.ENV, raising=False)
    endpoint = [f"https://{ADDRESS}:2379"]
    first = lock.Etcd(endpoint, etcd_tls["ca_file"], [("pgha_lock", LOCK_PW)])
    held = lock.acquire(first, "/db/postgres/pgha-lock", lock.holder_record("pgha.switchover", {}, "m1"), ttl=5)
    assert first.user == "pgha_lock"
    monkeypatch.delenv(lock.ENV)  # a second command, in another process
    second = lock.Etcd(endpoint, etcd_tls["ca_file"], [("pgha_lock", LOCK_PW)])
    with pytest.raises(lock.Busy, match="the cluster is locked by pgha.switchover"):
        lock.acquire(second, "/db/postgres/pgha-lock", lock.holder_record("pgha.restart", {}, "m2"), ttl=5)
    assert held.release() is True
    assert lock.holder(second, "/db/postgres/pgha-lock") is None
    # the lock's user reaches nothing else: not Patroni's keys
    with pytest.raises(CommandExecutionError, match="permission denied"):
        second.post("/v3/kv/range", {"key": "L2RiL3Bvc3RncmVzL2xlYWRlcg=="})  # /db/postgres/leader


def test_changed_patroni_password_is_applied(mods, etcd_tls):
    module, state = mods
    set_model(module, patroni_pw="Pat-auth-rotated-1a2b")
    try:
        ret = state.auth_configured("postgres")
        assert ret["changes"]["etcd_auth"] == ["password of user patroni changed to pgha:secrets:etcd_patroni_password"]
        assert "Pat-auth-rotated-1a2b" not in repr(ret)
        client(etcd_tls["ca_file"], "patroni", "Pat-auth-rotated-1a2b").get("/db/postgres/leader")
        assert state.auth_configured("postgres")["changes"] == {}
    finally:
        set_model(module)
        assert state.auth_configured("postgres")["result"] is True


def test_wrong_root_password_names_the_key(mods):
    module, state = mods
    set_model(module, root_pw="Not-the-root-pw-77")
    try:
        ret = state.auth_configured("postgres")
        with pytest.raises(CommandExecutionError, match="pgha:secrets:etcd_root_password"):
            module.member_remove("nobody")
    finally:
        set_model(module)
    assert ret["result"] is False
    assert "etcd refuses the password of its user root (pgha:secrets:etcd_root_password)" in ret["comment"]
    assert "Not-the-root-pw-77" not in ret["comment"]


def test_membership_changes_log_in_as_root(mods):
    module, _ = mods
    with pytest.raises(CommandExecutionError, match="no member named nobody"):
        module.member_remove("nobody")
    assert [m["name"] for m in module.members()] == ["etcd"]


def test_disabling_follows_the_pillar(mods):
    module, state = mods
    set_model(module, auth=False)
    try:
        ret = state.auth_configured("postgres")
        assert ret["result"] is True, ret
        assert ret["changes"]["etcd_auth"] == ["authentication disabled (pgha:etcd:auth:enabled is false)"]
        assert module.auth_status()["enabled"] is False
    finally:
        set_model(module)
    # and on again: users kept, passwords set again since they cannot be checked while off
    ret = state.auth_configured("postgres")
    assert ret["result"] is True, ret
    assert ret["changes"]["etcd_auth"] == [
        "password of user root set (pgha:secrets:etcd_root_password)",
        "password of user patroni set (pgha:secrets:etcd_patroni_password)",
        "password of user pgha_lock set (pgha:secrets:etcd_lock_password)",
        "authentication enabled",
    ]


def test_no_password_in_etcd_log(etcd_tls):
    text = etcd_tls["log"].read_text(errors="replace")
    assert "authentication" in text or "auth" in text
    for secret in (ROOT_PW, PATRONI_PW, LOCK_PW, "Pat-auth-rotated-1a2b", "Not-the-root-pw-77"):
        assert secret not in text
    assert os.path.getsize(etcd_tls["log"]) > 0
