"""
Unit tests of the etcd_cluster execution module (_modules/etcd_cluster.py).

The loader's dunders come from ``configure_loader_modules``; python-etcd3
clients are replaced by fakes (one per endpoint) that record the calls made
and raise errors the way python-etcd3 does: its own exception class, raised
while handling the gRPC error that carries etcd's message.
"""

from __future__ import annotations

from types import SimpleNamespace
from unittest.mock import MagicMock

import grpc
import pytest
from pgha_test_helpers import load
from salt.exceptions import CommandExecutionError

# python-etcd3's generated protobuf code, on protobuf's pure-Python implementation.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:etcd3")

MAP = {
    "id": "etcd",
    "etcd_nodes": ["etcd", "etcd02", "etcd03"],
    "nodes": {
        "etcd": {"address": "127.0.0.5", "roles": ["etcd"]},
        "etcd02": {"address": "127.0.0.7", "roles": ["etcd"]},
        "etcd03": {"address": "127.0.0.8", "roles": ["etcd"]},
    },
    "etcd": {"client_port": 2379, "peer_port": 2380, "auth": {"enabled": False},
             "tls": {"enabled": False, "ca_file": "/etc/pgha/pki/etcd-ca.crt"}},
    "cluster": {"scope": "postgres", "namespace": "/db/"},
    "users": {"etcd_patroni": "patroni", "etcd_lock": "pgha_lock"},
    "secrets": {"etcd_root_password": "", "etcd_patroni_password": "", "etcd_lock_password": ""},
}


def member(member_id: int, name: str, address: str) -> SimpleNamespace:
    return SimpleNamespace(id=member_id, name=name, peer_urls=[f"http://{address}:2380"],
                           client_urls=[f"http://{address}:2379"] if name else [])


MEMBERS = [
    member(0x8E9E05C52164694D, "etcd", "127.0.0.5"),
    member(0x91BC3C398FB3C146, "etcd02", "127.0.0.7"),
    member(0xFD422379FDA50E48, "etcd03", "127.0.0.8"),
]


class FakeRpcError(grpc.RpcError):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def etcd_error(exc_class, code: grpc.StatusCode, details: str):
    """Raise as python-etcd3's _handle_errors does: its class, from inside the gRPC error."""
    try:
        raise FakeRpcError(code, details)
    except FakeRpcError:
        raise exc_class  # python-etcd3 raises the bare class


class FakeClient:
    def __init__(self, host: str, port: int, members: list | None = None, fail: Exception | None = None,
                 leader: SimpleNamespace | None = None) -> None:
        self.host, self.port = host, port
        self._members = list(MEMBERS if members is None else members)
        self.fail = fail
        self.leader = leader if leader is not None else MEMBERS[0]
        self.calls: list = []
        self.closed = False
        self.add_error = None
        self.remove_error = None

    def _check(self):
        if self.fail is not None:
            if isinstance(self.fail, tuple):
                etcd_error(*self.fail)
            raise self.fail

    @property
    def members(self):
        self._check()
        return iter(self._members)

    def status(self):
        self._check()
        return SimpleNamespace(leader=self.leader, raft_term=4, raft_index=1234, db_size=20480, version="3.4.23")

    def add_member(self, urls):
        self._check()
        self.calls.append(("add_member", urls))
        if self.add_error:
            etcd_error(*self.add_error)
        return SimpleNamespace(id=0x1A2B3C4D5E6F, name="", peer_urls=list(urls), client_urls=[])

    def remove_member(self, member_id):
        self._check()
        self.calls.append(("remove_member", member_id))
        if self.remove_error:
            etcd_error(*self.remove_error)

    def close(self):
        self.closed = True


etcd_cluster_module = load("_modules", "etcd_cluster")


@pytest.fixture
def configure_loader_modules():
    return {
        etcd_cluster_module: {
            "__salt__": {"pgha_config.mapdata": MagicMock(return_value=MAP)},
            "__context__": {},
            "__opts__": {"test": False},
            "__grains__": {"id": "etcd"},
            "log": MagicMock(),
        }
    }


@pytest.fixture
def etcd_cluster(monkeypatch):
    """The module, its dunders in place; waits do not sleep (restored after the test)."""
    monkeypatch.setattr(etcd_cluster_module.time, "sleep", MagicMock())
    return etcd_cluster_module


@pytest.fixture
def clients(etcd_cluster, monkeypatch):
    """host -> FakeClient; the module's _client hands them out."""
    made = {
        "127.0.0.5": FakeClient("127.0.0.5", 2379),
        "127.0.0.7": FakeClient("127.0.0.7", 2379),
        "127.0.0.8": FakeClient("127.0.0.8", 2379),
    }
    monkeypatch.setattr(etcd_cluster, "_client", lambda host, port, settings=None, admin=False: made[host])
    return made


def unreachable(client: FakeClient) -> None:
    client.fail = (etcd_cluster_exceptions().ConnectionFailedError, grpc.StatusCode.UNAVAILABLE,
                   "failed to connect to all addresses")


def etcd_cluster_exceptions():
    import etcd3.exceptions

    return etcd3.exceptions


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------


def test_virtual(etcd_cluster, monkeypatch):
    assert etcd_cluster.__virtual__() == "etcd_cluster"
    monkeypatch.setattr(etcd_cluster, "HAS_ETCD3", False)
    monkeypatch.setattr(etcd_cluster, "IMPORT_ERROR", "No module named 'etcd3'")
    result = etcd_cluster.__virtual__()
    assert result[0] is False and "No module named 'etcd3'" in result[1]


def test_client_is_built_with_host_port_and_timeout(etcd_cluster, monkeypatch):
    made = MagicMock()
    monkeypatch.setattr(etcd_cluster.etcd3, "client", made)
    etcd_cluster._client("127.0.0.5", 2379)
    made.assert_called_once_with(host="127.0.0.5", port=2379, timeout=etcd_cluster.TIMEOUT, ca_cert=None)


def test_client_over_tls_verifies_with_the_ca(etcd_cluster, monkeypatch):
    made = MagicMock()
    monkeypatch.setattr(etcd_cluster.etcd3, "client", made)
    settings = dict(etcd_cluster._settings(), ca_file="/srv/pki/ca.crt")
    etcd_cluster._client("127.0.0.5", 2379, settings)
    made.assert_called_once_with(host="127.0.0.5", port=2379, timeout=etcd_cluster.TIMEOUT, ca_cert="/srv/pki/ca.crt")


def test_settings_from_the_pillar_model(etcd_cluster):
    settings = etcd_cluster._settings()
    assert settings["endpoints"] == [("etcd", "127.0.0.5", 2379), ("etcd02", "127.0.0.7", 2379), ("etcd03", "127.0.0.8", 2379)]
    assert settings["ca_file"] is None
    assert settings["auth"] is False
    # Patroni's role covers its cluster's keys only
    assert settings["prefix"] == "/db/postgres/"
    assert settings["role"] == "pgha-postgres"
    assert load("_utils", "pgha_etcd_auth")._prefix_end(settings["prefix"].encode()) == b"/db/postgres0"
    # the lock's role covers its one key
    assert (settings["lock_role"], settings["lock_key"], settings["lock_user"]) == (
        "pgha-postgres-lock", "/db/postgres/pgha-lock", "pgha_lock")


# ---------------------------------------------------------------------------
# members, health
# ---------------------------------------------------------------------------


def test_members(etcd_cluster, clients):
    found = etcd_cluster.members()
    assert found[0] == {"id": "8e9e05c52164694d", "name": "etcd", "peer_urls": ["http://127.0.0.5:2380"],
                        "client_urls": ["http://127.0.0.5:2379"]}
    assert [m["name"] for m in found] == ["etcd", "etcd02", "etcd03"]
    assert clients["127.0.0.5"].closed


def test_members_next_endpoint(etcd_cluster, clients):
    unreachable(clients["127.0.0.5"])
    assert len(etcd_cluster.members()) == 3
    assert clients["127.0.0.5"].closed and clients["127.0.0.7"].closed


def test_members_no_endpoint(etcd_cluster, clients):
    for client in clients.values():
        unreachable(client)
    with pytest.raises(CommandExecutionError, match=r"no endpoint answered: etcd \(127.0.0.5:2379\)"):
        etcd_cluster.members()


def test_health(etcd_cluster, clients):
    seen = etcd_cluster.health()
    assert seen["healthy"] is True
    assert seen["tls"] is False
    assert seen["endpoints"]["etcd"] == {"endpoint": "127.0.0.5:2379", "reachable": True, "leader": "etcd",
                                         "is_leader": True, "raft_term": 4, "raft_index": 1234, "db_size": 20480,
                                         "version": "3.4.23"}
    assert seen["endpoints"]["etcd02"]["is_leader"] is False


def test_health_unreachable_endpoint(etcd_cluster, clients):
    unreachable(clients["127.0.0.8"])
    seen = etcd_cluster.health()
    assert seen["healthy"] is False
    assert seen["endpoints"]["etcd03"] == {"endpoint": "127.0.0.8:2379", "reachable": False,
                                           "error": "etcd connection failed"}


def test_health_split_leaders(etcd_cluster, clients):
    clients["127.0.0.8"].leader = MEMBERS[2]
    assert etcd_cluster.health()["healthy"] is False


def test_wait_healthy(etcd_cluster, clients):
    assert etcd_cluster.wait_healthy(timeout=5)["healthy"] is True


def test_wait_healthy_times_out(etcd_cluster, clients):
    unreachable(clients["127.0.0.7"])
    with pytest.raises(CommandExecutionError, match=r"within 0 s; saw: etcd: leader etcd; etcd02: etcd connection failed"):
        etcd_cluster.wait_healthy(timeout=0)


def test_health_of_named_members_only(etcd_cluster, clients):
    # etcd03 is in pillar but has not joined yet: the members that have are checked
    unreachable(clients["127.0.0.8"])
    seen = etcd_cluster.health(names="etcd,etcd02")
    assert seen["healthy"] is True and sorted(seen["endpoints"]) == ["etcd", "etcd02"]
    assert etcd_cluster.wait_healthy(timeout=0, names=["etcd", "etcd02"])["healthy"] is True


def test_health_names_must_be_pillars_etcd_nodes(etcd_cluster, clients):
    with pytest.raises(CommandExecutionError, match=r"names must be etcd nodes of pillar \(not: postgres04\)"):
        etcd_cluster.health(names="etcd,postgres04")


def test_local_tells_whether_the_member_has_started_here(etcd_cluster, tmp_path):
    data_dir = tmp_path / "default"
    etcd_cluster.__salt__["pgha_config.mapdata"].return_value = dict(MAP, lookup={"etcd": {"data_dir": str(data_dir)}})
    assert etcd_cluster.local() == {"data_dir": str(data_dir), "bootstrapped": False}
    (data_dir / "member" / "wal").mkdir(parents=True)
    assert etcd_cluster.local()["bootstrapped"] is True


@pytest.mark.parametrize("purge", [False, True])
def test_retire_local_disables_etcd_and_moves_its_data_aside(etcd_cluster, tmp_path, purge):
    data_dir = tmp_path / "default"
    (data_dir / "member" / "wal").mkdir(parents=True)
    (data_dir / "member" / "wal" / "0.wal").write_text("x")
    etcd_cluster.__salt__["pgha_config.mapdata"].return_value = dict(MAP, lookup={"etcd": {"data_dir": str(data_dir)}})
    disable = etcd_cluster.__salt__["pgha_service.disable"] = MagicMock(return_value={"running": False})
    remove = etcd_cluster.__salt__["file.remove"] = MagicMock(side_effect=lambda path: __import__("shutil").rmtree(path))
    done = etcd_cluster.retire_local(purge=purge)
    disable.assert_called_once_with("etcd")
    assert not data_dir.exists()
    if purge:
        remove.assert_called_once_with(str(data_dir))
        assert done["data"] == "removed"
    else:
        remove.assert_not_called()
        assert done["data"].startswith(str(data_dir) + ".removed-")
        assert (tmp_path / done["data"].rsplit("/", 1)[1] / "member" / "wal" / "0.wal").read_text() == "x"
    assert done["service"] == {"running": False, "disabled": True}


# ---------------------------------------------------------------------------
# member_add
# ---------------------------------------------------------------------------


def test_member_add(etcd_cluster, clients):
    added = etcd_cluster.member_add("etcd04", "http://127.0.0.9:2380")
    assert clients["127.0.0.5"].calls == [("add_member", ["http://127.0.0.9:2380"])]
    assert added == {
        "id": "1a2b3c4d5e6f",
        "name": "etcd04",
        "peer_urls": ["http://127.0.0.9:2380"],
        "client_urls": [],
        "initial_cluster": "etcd=http://127.0.0.5:2380,etcd02=http://127.0.0.7:2380,"
        "etcd03=http://127.0.0.8:2380,etcd04=http://127.0.0.9:2380",
        "initial_cluster_state": "existing",
    }
    assert clients["127.0.0.5"].closed


def test_member_add_through_the_next_endpoint(etcd_cluster, clients):
    unreachable(clients["127.0.0.5"])
    etcd_cluster.member_add("etcd04", "http://127.0.0.9:2380")
    assert clients["127.0.0.7"].calls == [("add_member", ["http://127.0.0.9:2380"])]


def test_member_add_no_endpoint(etcd_cluster, clients):
    for client in clients.values():
        unreachable(client)
    with pytest.raises(CommandExecutionError, match="adding member etcd04 .*no endpoint answered"):
        etcd_cluster.member_add("etcd04", "http://127.0.0.9:2380")


def test_member_add_refused_by_etcd_keeps_its_message(etcd_cluster, clients):
    clients["127.0.0.5"].add_error = (etcd_cluster_exceptions().PreconditionFailedError,
                                      grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: unhealthy cluster")
    with pytest.raises(CommandExecutionError) as err:
        etcd_cluster.member_add("etcd04", "http://127.0.0.9:2380")
    assert "refused by etcd (127.0.0.5:2379): etcdserver: unhealthy cluster (FAILED_PRECONDITION)" in str(err.value)
    assert clients["127.0.0.7"].calls == []  # a refusal is not retried elsewhere


def test_member_add_existing_name_or_url(etcd_cluster, clients):
    with pytest.raises(CommandExecutionError, match="etcd02 .* is already a member"):
        etcd_cluster.member_add("etcd02", "http://127.0.0.9:2380")
    with pytest.raises(CommandExecutionError, match="already a member: id fd422379fda50e48, name etcd03"):
        etcd_cluster.member_add("etcd04", "http://127.0.0.8:2380")
    assert clients["127.0.0.5"].calls == []


@pytest.mark.parametrize("bad", ["127.0.0.9:2380", "http://127.0.0.9:2380/x", "", None])
def test_member_add_bad_peer_url(etcd_cluster, clients, bad):
    with pytest.raises(CommandExecutionError, match="peer_url must be a URL"):
        etcd_cluster.member_add("etcd04", bad)


def test_member_add_ipv6_peer_url(etcd_cluster, clients):
    etcd_cluster.member_add("etcd04", "http://[fd00::9]:2380")
    assert clients["127.0.0.5"].calls == [("add_member", ["http://[fd00::9]:2380"])]


# ---------------------------------------------------------------------------
# member_remove
# ---------------------------------------------------------------------------


def test_member_remove_by_name(etcd_cluster, clients):
    removed = etcd_cluster.member_remove("etcd03")
    assert clients["127.0.0.5"].calls == [("remove_member", 0xFD422379FDA50E48)]
    assert removed["name"] == "etcd03" and removed["id"] == "fd422379fda50e48"


def test_member_remove_by_hex_id(etcd_cluster, clients):
    etcd_cluster.member_remove("91BC3C398FB3C146")
    assert clients["127.0.0.5"].calls == [("remove_member", 0x91BC3C398FB3C146)]


def test_member_remove_unknown(etcd_cluster, clients):
    with pytest.raises(CommandExecutionError, match=r"no member named etcd09 \(members: etcd, etcd02, etcd03\)"):
        etcd_cluster.member_remove("etcd09")
    assert clients["127.0.0.5"].calls == []


def test_member_remove_refused(etcd_cluster, clients):
    clients["127.0.0.5"].remove_error = (
        etcd_cluster_exceptions().PreconditionFailedError, grpc.StatusCode.FAILED_PRECONDITION,
        "etcdserver: re-configuration failed due to not enough started members")
    with pytest.raises(CommandExecutionError, match="not enough started members"):
        etcd_cluster.member_remove("etcd03")


def test_member_remove_unreachable(etcd_cluster, clients):
    for client in clients.values():
        unreachable(client)
    with pytest.raises(CommandExecutionError, match="removing member etcd03: no endpoint answered"):
        etcd_cluster.member_remove("etcd03")


def test_member_remove_needs_a_name(etcd_cluster, clients):
    with pytest.raises(CommandExecutionError, match="needs the member's name"):
        etcd_cluster.member_remove("")
