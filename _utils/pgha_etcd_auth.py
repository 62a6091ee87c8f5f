"""
etcd's access control as pillar ``pgha:etcd:auth`` wants it, converged in
small steps on a client of the ``etcd_cluster`` module (logged in as root
when authentication is on): the user root, Patroni's role (read and write
the cluster's prefix) and user, the lock's role (read and write the lock's
key only) and user, then authentication switched on (or off). Each step is
said in words, never with a password; with ``test`` they are only listed.
Reached as ``__utils__["pgha_etcd_auth.converge"]``; needs python-etcd3.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError

# etcd3's generated code predates protobuf 4: its pure-Python implementation (see etcd_cluster).
os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
try:
    from etcd3 import etcdrpc
    from etcd3.etcdrpc import auth_pb2
except Exception:  # noqa: BLE001  # pylint: disable=broad-except  # etcd_cluster's __virtual__ says why
    etcdrpc = auth_pb2 = None

# Every change of etcd's access control is a raft request (etcd fsyncs it): seconds when etcd's disk is busy.
TIMEOUT = 10


def _prefix_end(prefix: bytes) -> bytes:
    """The end of the key range of every key starting with ``prefix``."""
    return prefix[:-1] + bytes([prefix[-1] + 1])


class _Converge:
    """
    One convergence of etcd's access control: its calls (made, or only
    listed with ``test``) and the changes they make, in words. Passwords
    are never part of the words.
    """

    def __init__(self, client: Any, settings: dict, test: bool, authenticate: Callable[..., Any]):
        self.client, self.settings, self.test, self.authenticate = client, settings, test, authenticate
        self.stub = etcdrpc.AuthStub(client.channel)
        if settings["auth"]:
            # _client logged in as root already: no token means authentication is off in etcd
            token = dict(client.metadata or ()).get("token")
        else:
            token = authenticate(client, "root", settings["root_password"], "pgha:secrets:etcd_root_password")
        self.enabled = token is not None
        self.metadata = (("token", token),) if token else None
        self.changes: list[str] = []

    def rpc(self, method: str, request):
        return getattr(self.stub, method)(request, TIMEOUT, metadata=self.metadata)

    def act(self, text: str, *calls) -> None:
        self.changes.append(text)
        if not self.test:
            for method, request in calls:
                self.rpc(method, request)

    def root(self, users: set) -> None:
        password = self.settings["root_password"]
        grant = ("UserGrantRole", etcdrpc.AuthUserGrantRoleRequest(user="root", role="root"))
        if "root" not in users:
            self.act("user root created, with role root",
                     ("UserAdd", etcdrpc.AuthUserAddRequest(name="root", password=password)), grant)
            return
        if "root" not in self.rpc("UserGet", etcdrpc.AuthUserGetRequest(name="root")).roles:
            self.act("role root granted to user root", grant)
        if not self.enabled:
            # Not checkable while authentication is off: set it.
            self.act("password of user root set (pgha:secrets:etcd_root_password)",
                     ("UserChangePassword", etcdrpc.AuthUserChangePasswordRequest(name="root", password=password)))

    def role(self, roles: set, role: str, key: str, whole_prefix: bool) -> None:
        """``role`` may read and write ``key`` (every key under it when ``whole_prefix``), and nothing else."""
        raw = key.encode()
        wanted = auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=raw,
                                     range_end=_prefix_end(raw) if whole_prefix else b"")
        grant = ("RoleGrantPermission", etcdrpc.AuthRoleGrantPermissionRequest(name=role, perm=wanted))
        what = f"{key}{'*' if whole_prefix else ''}"
        if role not in roles:
            self.act(f"role {role} created: read and write {what}",
                     ("RoleAdd", etcdrpc.AuthRoleAddRequest(name=role)), grant)
            return
        perms = self.rpc("RoleGet", etcdrpc.AuthRoleGetRequest(role=role)).perm
        if not any(p.permType == wanted.permType and p.key == wanted.key and p.range_end == wanted.range_end
                   for p in perms):
            self.act(f"role {role} granted read and write on {what}", grant)

    def user(self, users: set, user: str, role: str, password: str, secret: str) -> None:
        """``user`` with ``role`` and the password of pillar's ``secret`` (checked by logging in)."""
        to_role = ("UserGrantRole", etcdrpc.AuthUserGrantRoleRequest(user=user, role=role))
        set_password = ("UserChangePassword", etcdrpc.AuthUserChangePasswordRequest(name=user, password=password))
        if user not in users:
            self.act(f"user {user} created, with role {role}",
                     ("UserAdd", etcdrpc.AuthUserAddRequest(name=user, password=password)), to_role)
            return
        if role not in self.rpc("UserGet", etcdrpc.AuthUserGetRequest(name=user)).roles:
            self.act(f"role {role} granted to user {user}", to_role)
        if not self.enabled:
            self.act(f"password of user {user} set (pgha:secrets:{secret})", set_password)
            return
        try:
            self.authenticate(self.client, user, password, f"pgha:secrets:{secret}")
        except CommandExecutionError:
            self.act(f"password of user {user} changed to pgha:secrets:{secret}", set_password)


def converge(client: Any, settings: dict, test: bool, authenticate: Callable[..., Any]) -> dict:
    """
    Bring etcd's users, role and authentication switch to what the pillar
    says; returns whether authentication is on and the list of changes (made,
    or to be made with ``test``).
    """
    run = _Converge(client, settings, test, authenticate)
    if not settings["auth"]:
        if run.enabled:
            run.act("authentication disabled (pgha:etcd:auth:enabled is false)",
                    ("AuthDisable", etcdrpc.AuthDisableRequest()))
        return {"enabled": run.enabled and test, "changes": run.changes}
    users = set(run.rpc("UserList", etcdrpc.AuthUserListRequest()).users)
    roles = set(run.rpc("RoleList", etcdrpc.AuthRoleListRequest()).roles)
    run.root(users)
    run.role(roles, settings["role"], settings["prefix"], whole_prefix=True)
    run.user(users, settings["user"], settings["role"], settings["user_password"], "etcd_patroni_password")
    run.role(roles, settings["lock_role"], settings["lock_key"], whole_prefix=False)
    run.user(users, settings["lock_user"], settings["lock_role"], settings["lock_password"], "etcd_lock_password")
    if not run.enabled:
        run.act("authentication enabled", ("AuthEnable", etcdrpc.AuthEnableRequest()))
    return {"enabled": True if not test else run.enabled, "changes": run.changes}
