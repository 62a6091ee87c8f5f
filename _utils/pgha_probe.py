"""
The probe role's checks of the client path (HAProxy's leader port): which
server a connection reaches and whether it is in recovery, one write and the
server that took it, and a wait until writes land on the leader. The
runner's ``pgha.check`` and its gates use them. Needs psycopg.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg


def probe(dsn: str) -> tuple[str, bool]:
    """The server a connection reaches (its address) and whether it is in recovery."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT host(inet_server_addr()), pg_is_in_recovery()").fetchone()
    return row[0], row[1]


def write_probe(dsn: str) -> str:
    """One write (a single row kept up to date, table ``pgha_check``); the address of the server that took it."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS pgha_check (id int PRIMARY KEY, at timestamptz NOT NULL)")
        return conn.execute(
            "INSERT INTO pgha_check VALUES (1, now()) ON CONFLICT (id) DO UPDATE SET at = now() "
            "RETURNING host(inet_server_addr())"
        ).fetchone()[0]


def probe_problems(dsn: str, leader_address: str | None) -> list[str]:
    """What keeps a probe through ``dsn`` from reaching the writable leader (at ``leader_address``)."""
    try:
        address, in_recovery = probe(dsn)
    except psycopg.Error as exc:
        return [f"the probe role cannot query through HAProxy: {str(exc).strip()}"]
    if in_recovery:
        return [f"HAProxy's leader port reached {address}, a server in recovery"]
    if leader_address and address != leader_address:
        return [f"HAProxy's leader port reached {address}, not the leader at {leader_address}"]
    return []


def wait_write(dsn: str, leader_address: Callable[[], str | None], timeout: float) -> dict:
    """
    Wait, at most ``timeout`` seconds, until a write through ``dsn`` lands on
    the server at ``leader_address()`` (the leader's, None while there is
    none). Returns ok, the server's address and the time it took, or what
    was seen last.
    """
    started = time.monotonic()
    seen = "nothing yet"
    while time.monotonic() - started < timeout:
        wanted = leader_address()
        if not wanted:
            seen = "no running leader"
        else:
            try:
                server = write_probe(dsn)
            except psycopg.Error as exc:
                server, seen = None, f"the write failed: {str(exc).strip()}"
            if server == wanted:
                return {"ok": True, "server_address": server, "elapsed_s": round(time.monotonic() - started, 2)}
            if server:
                seen = f"the write landed on {server}, the leader is at {wanted}"
        time.sleep(1)
    return {"ok": False, "comment": f"expected a write through HAProxy to land on the leader within {timeout:g} s; "
                                    f"saw: {seen}"}
