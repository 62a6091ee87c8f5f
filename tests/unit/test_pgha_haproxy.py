"""
Unit tests of the pgha_haproxy execution module (_modules/pgha_haproxy.py).

The loader's dunders come from ``configure_loader_modules``. HAProxy's
runtime API is a real UNIX socket served by a thread (the protocol: one
command line in, the answer, then the connection closes); the stats page is
mocked at the shared HTTP request (_utils/pgha_cluster.py). The CSV header is HAProxy 2.6.12's
``show stat`` header, as the lab's HAProxy prints it.
"""

from __future__ import annotations

import socket
import threading
from unittest.mock import MagicMock, patch

import pytest
from pgha_test_helpers import cluster_model, load, utils
from salt.exceptions import CommandExecutionError

haproxy_module = load("_modules", "pgha_haproxy")

HEADER = (
    "pxname,svname,qcur,qmax,scur,smax,slim,stot,bin,bout,dreq,dresp,ereq,econ,eresp,wretr,wredis,status,"
    "weight,act,bck,chkfail,chkdown,lastchg,downtime,qlimit,pid,iid,sid,throttle,lbtot,tracked,type,rate,"
    "rate_lim,rate_max,check_status,check_code,check_duration,hrsp_1xx,hrsp_2xx,hrsp_3xx,hrsp_4xx,"
    "hrsp_5xx,hrsp_other,hanafail,req_rate,req_rate_max,req_tot,cli_abrt,srv_abrt,comp_in,comp_out,"
    "comp_byp,comp_rsp,lastsess,last_chk,last_agt,qtime,ctime,rtime,ttime,agent_status,agent_code,"
    "agent_duration,check_desc,agent_desc,check_rise,check_fall,check_health,agent_rise,agent_fall,"
    "agent_health,addr,cookie,mode,algo,conn_rate,conn_rate_max,conn_tot,intercepted,dcon,dses,wrew,"
    "connect,reuse,cache_lookups,cache_hits,srv_icur,src_ilim,qtime_max,ctime_max,rtime_max,ttime_max,"
    "eint,idle_conn_cur,safe_conn_cur,used_conn_cur,need_conn_est,uweight,agg_server_status,"
    "agg_server_check_status,agg_check_status,-,ssl_sess,ssl_reused_sess,ssl_failed_handshake,"
    "h2_headers_rcvd,h2_data_rcvd,h2_settings_rcvd,h2_rst_stream_rcvd,h2_goaway_rcvd,"
    "h2_detected_conn_protocol_errors,h2_detected_strm_protocol_errors,h2_rst_stream_resp,h2_goaway_resp,"
    "h2_open_connections,h2_backend_open_streams,h2_total_connections,h2_backend_total_streams,"
    "h1_open_connections,h1_open_streams,h1_total_connections,h1_total_streams,h1_bytes_in,h1_bytes_out,"
    "h1_spliced_bytes_in,h1_spliced_bytes_out,"
)
COLUMNS = HEADER.rstrip(",").split(",")


def row(pxname: str, svname: str, **fields) -> str:
    values = dict.fromkeys(COLUMNS, "")
    values.update(pxname=pxname, svname=svname, **{key: str(value) for key, value in fields.items()})
    return ",".join(values[column] for column in COLUMNS) + ","


def server(name: str, address: str, status: str, code: int = 200, weight: int = 1, sessions: int = 0,
           proxy: str = "postgres") -> str:
    return row(
        proxy, name, status=status, weight=weight, scur=sessions, lastchg=42, addr=address,
        check_status="L7OK" if code == 200 else "L7STS", check_code=code,
        check_desc="Layer7 check passed" if code == 200 else "Layer7 wrong status",
    )


def show_stat(*servers: str) -> str:
    lines = [
        "# " + HEADER,
        row("stats", "FRONTEND", status="OPEN"),
        row("stats", "BACKEND", status="UP"),
        row("postgres", "FRONTEND", status="OPEN"),
        *servers,
        row("postgres", "BACKEND", status="UP"),
    ]
    return "\n".join(lines) + "\n\n"


ONE_WRITER = show_stat(
    server("postgres01", "127.0.0.15:5432", "UP", sessions=3),
    server("postgres02", "127.0.0.32:5432", "DOWN", code=503),
    server("postgres03", "127.0.0.6:5432", "DOWN", code=503),
)


def build_map(socket_path: str, stats_bind: str = "127.0.0.3") -> dict:
    """The HAProxy node's map (a real model's): its admin socket, its stats page, two listeners."""
    patch = {"lookup": {"haproxy": {"admin_socket": socket_path}},
             "haproxy": {"stats_bind_address": stats_bind, "sync": {"enabled": False}, "async": {"enabled": False}},
             "secrets": {"haproxy_stats_password": "stats-s3cret"}}
    addresses = {"postgres01": "127.0.0.15", "postgres02": "127.0.0.32", "postgres03": "127.0.0.6",
                 "etcd": "127.0.0.5", "haproxy": "127.0.0.3"}
    return cluster_model(patch, minion_id="haproxy", addresses=addresses).as_map(show_secrets=True)


class AdminSocket:
    """A UNIX socket that answers like HAProxy's runtime API, recording the commands."""

    def __init__(self, path: str, answers: dict) -> None:
        self.path, self.answers, self.commands = path, answers, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(5)
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while not data.endswith(b"\n"):
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                command = data.decode().strip()
                self.commands.append(command)
                answer = self.answers.get(command, "Unknown command.\n")
                conn.sendall((answer() if callable(answer) else answer).encode())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def socket_path(tmp_path):
    # AF_UNIX paths are short: keep the socket near the root of tmp_path.
    return str(tmp_path / "admin.sock")


@pytest.fixture
def admin(socket_path):
    server_socket = AdminSocket(socket_path, {"show stat": ONE_WRITER})
    yield server_socket
    server_socket.close()


@pytest.fixture
def stats_bind() -> str:
    return "127.0.0.3"


@pytest.fixture
def configure_loader_modules(socket_path, stats_bind):
    return {
        haproxy_module: {
            "__salt__": {"pgha_config.mapdata": MagicMock(return_value=build_map(socket_path, stats_bind))},
            "__utils__": utils("pgha_cluster", "pgha_model", "pgha_dcs"),
            "__context__": {},
            "__opts__": {"test": False},
            "log": MagicMock(),
        }
    }


@pytest.fixture
def haproxy():
    return haproxy_module


@pytest.fixture
def stats_page(monkeypatch):
    """The stats page, as the shared HTTP request serves it: set its answer."""
    fake = MagicMock(return_value=(200, ONE_WRITER))
    monkeypatch.setattr(load("_utils", "pgha_cluster"), "request", fake)
    return fake


def asked(page: MagicMock) -> list[tuple]:
    return [(call.args[0], call.kwargs.get("auth")) for call in page.call_args_list]


AUTH = ("stats", "stats-s3cret")


# ---------------------------------------------------------------------------
# loading and plumbing
# ---------------------------------------------------------------------------


def test_virtual_needs_the_haproxy_binary(haproxy):
    with patch("salt.utils.path.which", return_value=None):
        result = haproxy.__virtual__()
    assert result[0] is False and "haproxy binary" in result[1]
    with patch("salt.utils.path.which", return_value="/usr/sbin/haproxy"):
        assert haproxy.__virtual__() == "pgha_haproxy"


def test_socket_command_speaks_the_runtime_api(haproxy, admin):
    assert haproxy._socket_command("show stat") == ONE_WRITER
    assert admin.commands == ["show stat"]


def test_socket_command_without_socket(haproxy):
    with pytest.raises(CommandExecutionError, match="no admin socket at .*admin.sock: is HAProxy running"):
        haproxy._socket_command("show stat")


def test_socket_command_refused(haproxy, socket_path):
    dead = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    dead.bind(socket_path)  # bound, never listening: connection refused
    try:
        with pytest.raises(CommandExecutionError, match="cannot use the admin socket"):
            haproxy._socket_command("show stat")
    finally:
        dead.close()


# ---------------------------------------------------------------------------
# servers, writer
# ---------------------------------------------------------------------------


def test_servers_from_the_admin_socket(haproxy, admin):
    every = haproxy.servers()
    assert list(every) == ["postgres"]  # the read paths are not in this HAProxy's statistics
    found = every["postgres"]
    assert sorted(found) == ["postgres01", "postgres02", "postgres03"]
    assert found["postgres01"] == {
        "status": "UP",
        "address": "127.0.0.15:5432",
        "weight": 1,
        "check_status": "L7OK",
        "check_code": 200,
        "check_desc": "Layer7 check passed",
        "sessions": 3,
        "last_change_s": 42,
    }
    assert found["postgres02"]["status"] == "DOWN" and found["postgres02"]["check_code"] == 503
    assert admin.commands == ["show stat"]


def test_servers_fall_back_to_the_stats_page(haproxy, stats_page):
    found = haproxy.servers()["postgres"]
    assert found["postgres01"]["status"] == "UP"
    assert asked(stats_page) == [("http://127.0.0.3:8080/;csv", AUTH)]


@pytest.mark.parametrize("stats_bind", ["*"])
def test_stats_page_on_every_address_uses_the_nodes_own(haproxy, stats_page, stats_bind):
    haproxy.servers()
    assert asked(stats_page) == [("http://127.0.0.3:8080/;csv", AUTH)]


def test_stats_page_wrong_credentials(haproxy, stats_page):
    stats_page.return_value = (401, "401 Unauthorized")
    with pytest.raises(CommandExecutionError) as err:
        haproxy.servers()
    assert "no admin socket" in str(err.value)
    assert "refused the credentials" in str(err.value)


def test_servers_nothing_answers(haproxy, stats_page):
    stats_page.side_effect = CommandExecutionError("http://127.0.0.3:8080/;csv unreachable: refused")
    with pytest.raises(CommandExecutionError, match="no admin socket .*; and pgha: HAProxy's stats page .* unreachable"):
        haproxy.servers()


def test_servers_without_the_postgres_proxy(haproxy, monkeypatch):
    monkeypatch.setattr(haproxy, "_socket_command", MagicMock(return_value="# " + HEADER + "\n" + row("stats", "FRONTEND") + "\n"))
    with pytest.raises(CommandExecutionError, match="no proxy 'postgres'"):
        haproxy.servers()


def test_writer(haproxy, admin):
    assert haproxy.writer() == "postgres01"


def test_writer_in_transition_counts_as_up(haproxy, monkeypatch):
    monkeypatch.setattr(haproxy, "_socket_command", MagicMock(return_value=show_stat(
        server("postgres01", "127.0.0.15:5432", "DOWN", code=503),
        server("postgres02", "127.0.0.32:5432", "UP 1/2", code=503),
    )))
    assert haproxy.writer() == "postgres02"


def test_writer_none(haproxy, monkeypatch):
    monkeypatch.setattr(haproxy, "_socket_command", MagicMock(return_value=show_stat(
        server("postgres01", "127.0.0.15:5432", "DOWN", code=503),
        server("postgres02", "127.0.0.32:5432", "DRAIN"),
    )))
    assert haproxy.writer() is None


def test_writer_two_up_is_an_error(haproxy, monkeypatch):
    monkeypatch.setattr(haproxy, "_socket_command", MagicMock(return_value=show_stat(
        server("postgres01", "127.0.0.15:5432", "UP"),
        server("postgres02", "127.0.0.32:5432", "UP"),
    )))
    with pytest.raises(CommandExecutionError, match="2 servers are UP \\(postgres01, postgres02\\)"):
        haproxy.writer()


# ---------------------------------------------------------------------------
# drain, ready
# ---------------------------------------------------------------------------


def drained() -> str:
    return show_stat(
        server("postgres01", "127.0.0.15:5432", "DRAIN", weight=0),
        server("postgres02", "127.0.0.32:5432", "DOWN", code=503),
        server("postgres03", "127.0.0.6:5432", "DOWN", code=503),
    )


def with_replicas(text: str, status: str) -> str:
    """The same statistics with the replicas' listener holding postgres01 in ``status``."""
    return text.rstrip("\n") + "\n" + server("postgres01", "127.0.0.15:5432", status, proxy="postgres_replicas") + "\n\n"


def test_drain_in_every_listener(haproxy, admin):
    answers = iter([with_replicas(ONE_WRITER, "UP"), with_replicas(drained(), "DRAIN")])
    admin.answers["show stat"] = lambda: next(answers)
    admin.answers["set server postgres/postgres01 state drain"] = "\n"
    admin.answers["set server postgres_replicas/postgres01 state drain"] = "\n"
    assert haproxy.drain("postgres01") == {"server": "postgres01", "listeners": {
        "postgres": {"old": "UP", "new": "DRAIN"}, "postgres_replicas": {"old": "UP", "new": "DRAIN"}}}
    assert admin.commands == ["show stat", "set server postgres/postgres01 state drain",
                              "set server postgres_replicas/postgres01 state drain", "show stat"]


def test_ready(haproxy, admin):
    answers = iter([drained(), ONE_WRITER])
    admin.answers["show stat"] = lambda: next(answers)
    admin.answers["set server postgres/postgres01 state ready"] = "\n"
    assert haproxy.ready("postgres01") == {"server": "postgres01", "listeners": {"postgres": {"old": "DRAIN", "new": "UP"}}}
    assert admin.commands[1] == "set server postgres/postgres01 state ready"


def test_drain_refused_by_haproxy(haproxy, admin):
    admin.answers["set server postgres/postgres02 state drain"] = "Permission denied\n"
    with pytest.raises(CommandExecutionError, match="HAProxy refused 'set server postgres/postgres02 state drain': Permission denied"):
        haproxy.drain("postgres02")


def test_drain_unknown_server(haproxy, admin):
    with pytest.raises(CommandExecutionError, match="no server postgres09 in pgha's listeners"):
        haproxy.drain("postgres09")
    assert admin.commands == ["show stat"]


@pytest.mark.parametrize("bad", ["postgres01; shutdown sessions server postgres/postgres02", "a\nb", "", None])
def test_drain_refuses_what_is_not_a_name(haproxy, admin, bad):
    with pytest.raises(CommandExecutionError, match="is not a server name"):
        haproxy.drain(bad)
    assert admin.commands == []


def test_ready_without_admin_socket(haproxy, stats_page):
    # The stats page shows the servers, but only the socket changes them.
    with pytest.raises(CommandExecutionError, match="no admin socket"):
        haproxy.ready("postgres01")
