"""
Unit tests of _utils/pgha_lock.py (one operation at a time): the lock taken
with a lease, a second holder refused with the first named, or waiting its
turn; shared within the process that holds it (an orchestration's steps);
released only by its holder; expired with its lease when the holder dies;
broken on purpose; logins when etcd asks for them. etcd's JSON gateway is
an in-memory fake with leases that expire on a clock the tests move.
"""

from __future__ import annotations

import base64
import json
import os

import pytest
from pgha_test_helpers import load
from salt.exceptions import CommandExecutionError

lock = load("_utils", "pgha_lock")
KEY = "/db/postgres/pgha-lock"


class Gateway:
    """etcd's v3 JSON gateway in memory: keys, leases on a movable clock, authentication."""

    def __init__(self, auth: dict | None = None):
        self.kv: dict[str, tuple[str, int | None]] = {}
        self.leases: dict[int, float] = {}  # id -> expiry
        self.ttl: dict[int, int] = {}
        self.now, self.next_lease = 1000.0, 7
        self.auth = auth  # user -> password; None: authentication off
        self.tokens: set[str] = set()
        self.paths: list[str] = []
        self.down = False

    def expire(self) -> None:
        for lease, until in list(self.leases.items()):
            if until <= self.now:
                del self.leases[lease]
                self.kv = {k: v for k, v in self.kv.items() if v[1] != lease}

    def __call__(self, client, url: str, body: dict) -> tuple[int, dict]:
        if self.down:
            raise OSError("connection refused")
        path = url.split(":2379", 1)[1]
        self.paths.append(path)
        self.expire()
        if path == "/v3/auth/authenticate":
            if self.auth is None:
                return 400, {"error": "etcdserver: authentication is not enabled"}
            if self.auth.get(body["name"]) != body["password"]:
                return 400, {"error": "etcdserver: authentication failed, invalid user ID or password"}
            self.tokens.add(f"token-{body['name']}")
            return 200, {"token": f"token-{body['name']}"}
        if self.auth is not None and client.token not in self.tokens and path != "/v3/lease/keepalive":
            return 400, {"error": "etcdserver: user name is empty"}
        key = base64.b64decode(body.get("key", "")).decode() if "key" in body else None
        if path == "/v3/lease/grant":
            lease, self.next_lease = self.next_lease, self.next_lease + 1
            self.leases[lease], self.ttl[lease] = self.now + body["TTL"], body["TTL"]
            return 200, {"ID": str(lease), "TTL": str(body["TTL"])}
        if path == "/v3/lease/keepalive":
            lease = int(body["ID"])
            if lease not in self.leases:
                return 200, {"result": {"ID": body["ID"]}}
            self.leases[lease] = self.now + self.ttl[lease]
            return 200, {"result": {"ID": body["ID"], "TTL": str(self.ttl[lease])}}
        if path == "/v3/lease/revoke":
            lease = int(body["ID"])
            self.leases.pop(lease, None)
            self.kv = {k: v for k, v in self.kv.items() if v[1] != lease}
            return 200, {}
        if path == "/v3/kv/range":
            if key not in self.kv:
                return 200, {"count": "0"}
            value, lease = self.kv[key]
            kv = {"key": body["key"], "value": base64.b64encode(value.encode()).decode()}
            return 200, {"kvs": [dict(kv, lease=str(lease)) if lease else kv], "count": "1"}
        if path == "/v3/kv/deleterange":
            return 200, {"deleted": str(int(self.kv.pop(key, None) is not None))}
        if path == "/v3/kv/txn":
            compare = body["compare"][0]
            key = base64.b64decode(compare["key"]).decode()
            if key in self.kv:
                return 200, {"responses": []}
            put = body["success"][0]["requestPut"]
            self.kv[key] = (base64.b64decode(put["value"]).decode(), int(put["lease"]))
            return 200, {"succeeded": True}
        raise AssertionError(path)

    def holder(self) -> dict | None:
        return json.loads(self.kv[KEY][0]) if KEY in self.kv else None


@pytest.fixture
def gateway(monkeypatch):
    fake = Gateway()
    monkeypatch.setattr(lock.Etcd, "_raw", lambda client, url, body: fake(client, url, body))
    monkeypatch.setattr(lock.time, "sleep", lambda seconds: setattr(fake, "now", fake.now + seconds))
    monkeypatch.delenv(lock.ENV, raising=False)
    yield fake
    os.environ.pop(lock.ENV, None)


def etcd(logins=None):
    return lock.Etcd(["https://10.131.0.5:2379"], "/etc/pgha/pki/etcd-ca.crt", logins)


def record(command: str = "pgha.switchover", **args):
    return lock.holder_record(command, args, "salt1_master")


def another_process() -> None:
    """What a second command, in another process, sees: no lock of its own in its environment."""
    os.environ.pop(lock.ENV, None)


def test_the_lock_is_a_key_with_a_lease_that_records_its_holder(gateway):
    held = lock.acquire(etcd(), KEY, record(candidate="postgres02"), ttl=15)
    holder = gateway.holder()
    assert holder["command"] == "pgha.switchover" and holder["args"] == {"candidate": "postgres02"}
    assert holder["master"] == "salt1_master" and holder["pid"] == os.getpid() and holder["since"]
    assert gateway.kv[KEY][1] == held.lease and gateway.ttl[held.lease] == 15
    assert held.release() is True and gateway.holder() is None and held.lease not in gateway.leases


def test_a_second_command_is_refused_at_once_naming_the_holder(gateway):
    lock.acquire(etcd(), KEY, record("pgha.failover_drill", mode="switchover"), ttl=15)
    another_process()
    started = gateway.now
    with pytest.raises(lock.Busy) as refused:
        lock.acquire(etcd(), KEY, record("pgha.switchover"), ttl=15)
    assert gateway.now == started  # at once
    assert str(refused.value).startswith("the cluster is locked by pgha.failover_drill mode=switchover "
                                         "(master salt1_master, pid")
    assert gateway.holder()["command"] == "pgha.failover_drill"
    assert len(gateway.leases) == 1  # the refused command's own lease given back


def test_wait_takes_the_lock_once_its_holder_releases_it(gateway, monkeypatch):
    first = lock.acquire(etcd(), KEY, record("pgha.restart"), ttl=15)
    another_process()
    sleeps = []

    def sleep(seconds):
        sleeps.append(seconds)
        if len(sleeps) == 3:
            first.release()

    monkeypatch.setattr(lock.time, "sleep", sleep)
    second = lock.acquire(etcd(), KEY, record("pgha.switchover"), ttl=15, wait=60)
    assert len(sleeps) == 3 and gateway.holder()["command"] == "pgha.switchover"
    second.release()


def test_a_holder_that_dies_leaves_the_lock_to_expire_with_its_lease(gateway):
    lock.acquire(etcd(), KEY, record("pgha.switchover"), ttl=15)
    another_process()  # the holder was killed: nobody keeps its lease alive
    gateway.now += 14
    with pytest.raises(lock.Busy):
        lock.acquire(etcd(), KEY, record("pgha.restart"), ttl=15)
    gateway.now += 2
    assert lock.acquire(etcd(), KEY, record("pgha.restart"), ttl=15).holder["command"] == "pgha.restart"


def test_commands_inside_the_holding_process_share_the_lock(gateway):
    orchestration = lock.acquire(etcd(), KEY, record("state.orchestrate pgha"), ttl=15)
    step = lock.acquire(etcd(), KEY, record("pgha.retire"), ttl=15)
    assert step.shared and step.holder["command"] == "state.orchestrate pgha"
    assert step.release() is False and gateway.holder()["command"] == "state.orchestrate pgha"
    assert orchestration.release() is True and lock.ENV not in os.environ


def test_release_deletes_only_its_own_lock(gateway):
    mine = lock.acquire(etcd(), KEY, record("pgha.switchover"), ttl=15)
    lock.break_lock(etcd(), KEY)
    another_process()
    theirs = lock.acquire(etcd(), KEY, record("pgha.restart"), ttl=15)
    assert mine.release() is False and gateway.holder()["command"] == "pgha.restart"
    assert theirs.release() is True


def test_break_lock_removes_whoever_holds_it(gateway):
    assert lock.break_lock(etcd(), KEY) is None
    lock.acquire(etcd(), KEY, record("pgha.switchover"), ttl=15)
    assert lock.break_lock(etcd(), KEY)["command"] == "pgha.switchover"
    assert gateway.holder() is None and not gateway.leases


def test_keep_alive_refreshes_the_lease_and_says_when_it_is_lost(gateway, monkeypatch):
    held = lock.Lock(etcd(), KEY, record(), lease=None, ttl=15)
    lease = int(etcd().post("/v3/lease/grant", {"TTL": 15})["ID"])
    held.lease = lease
    stops = iter([False, False, True])
    monkeypatch.setattr(held._stop, "wait", lambda seconds: next(stops))
    gateway.now += 10
    held._refresh()
    assert gateway.leases[lease] == gateway.now + 15 and held.lost is None
    gateway.leases.clear()  # revoked, or expired while etcd was away too long
    stops = iter([False])
    monkeypatch.setattr(held._stop, "wait", lambda seconds: next(stops))
    held._refresh()
    assert "expired or was revoked" in held.lost


def test_logins_when_etcd_asks_and_root_until_the_locks_user_exists(gateway):
    gateway.auth = {"root": "Root-pw-1"}  # the lock's user not made yet (a cluster made before the lock)
    client = etcd([("pgha_lock", "Lock-pw-1"), ("root", "Root-pw-1")])
    lock.acquire(client, KEY, record(), ttl=15).release()
    assert client.user == "root"
    gateway.auth["pgha_lock"] = "Lock-pw-1"
    client = etcd([("pgha_lock", "Lock-pw-1"), ("root", "Root-pw-1")])
    lock.acquire(client, KEY, record(), ttl=15).release()
    assert client.user == "pgha_lock"
    with pytest.raises(CommandExecutionError, match="etcd refused every login for the lock: pgha_lock: .*"):
        lock.acquire(etcd([("pgha_lock", "wrong")]), KEY, record(), ttl=15)


def test_anonymous_while_etcds_authentication_is_off(gateway):
    client = etcd([("pgha_lock", "Lock-pw-1")])
    assert lock.acquire(client, KEY, record(), ttl=15).release() is True
    assert client.token is None and "/v3/auth/authenticate" not in gateway.paths


def test_no_endpoint_answers(gateway):
    gateway.down = True
    with pytest.raises(CommandExecutionError, match="etcd: no endpoint answered: https://10.131.0.5:2379: "):
        lock.acquire(etcd(), KEY, record(), ttl=15)


def test_a_lock_of_a_cluster_model():
    from pgha_test_helpers import TEST_SECRETS, cluster_model

    client, key = lock.of(cluster_model())
    assert key == KEY and client.endpoints == ["https://10.131.0.5:2379"]
    assert client.cafile == "/etc/pgha/pki/etcd-ca.crt"
    assert client.logins == [("pgha_lock", TEST_SECRETS["etcd_lock_password"]),
                             ("root", TEST_SECRETS["etcd_root_password"])]
    client, _ = lock.of(cluster_model({"etcd": {"auth": {"enabled": False}}}))
    assert client.logins == []


def test_an_orchestration_on_a_new_cluster_acts_until_etcd_answers_then_takes_the_lock(gateway):
    gateway.down = True
    with pytest.raises(CommandExecutionError, match="no endpoint answered"):
        lock.acquire(etcd(), KEY, record("pgha.etcd_members"), ttl=15)
    lock.mark_pending(KEY)
    step = lock.acquire(etcd(), KEY, record("pgha.etcd_members"), ttl=15)
    assert step.shared and "no endpoint answered" in step.holder["pending"] and step.release() is False
    gateway.down = False
    taken = lock.acquire(etcd(), KEY, record("state.orchestrate pgha"), ttl=15)
    assert not taken.shared and gateway.holder()["command"] == "state.orchestrate pgha"
    assert lock.acquire(etcd(), KEY, record("pgha.retire"), ttl=15).shared
    assert taken.release() is True
