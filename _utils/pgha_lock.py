"""
One operation at a time on a pgha cluster: a lock in etcd, under the
cluster's prefix (``<namespace><scope>/pgha-lock``), held with a lease that
its holder keeps alive from a thread of its own and that expires within
its TTL when the holder dies (a runner killed, a master lost). The key's
value records who holds it: the command, its arguments, the master, the
process, since when. Every command that changes the cluster takes it; a
second one is refused at once, naming the holder, or waits its turn
(``wait``); commands run inside an orchestration share the orchestration's
lock (the same process: ``PGHA_LOCK`` in its environment).

It speaks etcd's v3 JSON gateway over HTTP(S) with the standard library
(the master needs nothing more than Salt): the endpoints in turn, TLS
verified against the CA, logging in again whenever etcd asks (its
authentication switched on meanwhile, a token expired). Plain Python;
reached as ``__utils__["pgha_lock.<function>"]``.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
import uuid
from typing import Any

from salt.exceptions import CommandExecutionError

ENV = "PGHA_LOCK"
KEY = "pgha-lock"
HTTP_TIMEOUT = 3.0
# etcd's words when a request needs a (new) login.
LOGIN_AGAIN = ("user name is empty", "invalid auth token", "permission denied", "token")
NOT_ENABLED = "authentication is not enabled"


class Busy(CommandExecutionError):
    """The lock is held by another command; ``holder`` says by whom and since when."""

    def __init__(self, holder: dict):
        self.holder = holder
        super().__init__(describe(holder))


def describe(holder: dict) -> str:
    """One line on who holds the lock."""
    args = " ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                    for k, v in sorted((holder.get("args") or {}).items()) if v is not None)
    since = holder.get("since", "?")
    age = f", {time.time() - holder['since_ts']:.0f} s ago" if isinstance(holder.get("since_ts"), (int, float)) else ""
    return (f"the cluster is locked by {holder.get('command', '?')}{' ' + args if args else ''} "
            f"(master {holder.get('master', '?')}, pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
            f"since {since}{age})")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class Etcd:
    """
    A client of etcd's JSON gateway: ``endpoints`` (client URLs, tried in
    turn), ``cafile`` for https, ``logins`` ((user, password) pairs tried in
    order when etcd asks for a login; none: anonymous).
    """

    def __init__(self, endpoints: list[str], cafile: str | None = None, logins: list[tuple[str, str]] | None = None,
                 timeout: float = HTTP_TIMEOUT):
        self.endpoints, self.cafile, self.timeout = list(endpoints), cafile, timeout
        self.logins = [(user, password) for user, password in (logins or []) if user and password]
        self.token: str | None = None
        self.user: str | None = None

    def headers(self) -> dict:
        """A request's headers: JSON, and the token once logged in."""
        return {"Content-Type": "application/json", **({"Authorization": self.token} if self.token else {})}

    def context(self, url: str) -> ssl.SSLContext | None:
        """TLS verified against the cluster's CA for https, none for http."""
        return ssl.create_default_context(cafile=self.cafile) if url.startswith("https:") else None

    def _raw(self, url: str, body: dict) -> tuple[int, dict]:
        request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=self.headers(), method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context(url)) as answer:
                return answer.status, json.loads(answer.read() or b"{}")
        except urllib.error.HTTPError as exc:
            try:
                return exc.code, json.loads(exc.read() or b"{}")
            except ValueError:
                return exc.code, {"error": str(exc)}

    def post(self, path: str, body: dict) -> dict:
        """One request, to the first endpoint that answers; logs in again once when etcd asks."""
        problems = []
        for endpoint in self.endpoints:
            for attempt in (1, 2):
                try:
                    status, answer = self._raw(endpoint + path, body)
                except (OSError, urllib.error.URLError, ValueError) as exc:
                    problems.append(f"{endpoint}: {getattr(exc, 'reason', exc)}")
                    break
                error = str(answer.get("error") or "")
                if status == 200 and not error:
                    return answer
                if attempt == 1 and any(words in error for words in LOGIN_AGAIN):
                    self.login(endpoint)
                    continue
                raise CommandExecutionError(f"etcd {endpoint}{path}: {error or status}")
        raise CommandExecutionError("etcd: no endpoint answered: " + "; ".join(problems))

    def login(self, endpoint: str) -> None:
        """A token from the first login etcd accepts; none when its authentication is off."""
        self.token = None
        refused = []
        for user, password in self.logins:
            try:
                status, answer = self._raw(endpoint + "/v3/auth/authenticate", {"name": user, "password": password})
            except (OSError, urllib.error.URLError, ValueError) as exc:
                raise CommandExecutionError(f"etcd {endpoint}: {getattr(exc, 'reason', exc)}") from None
            if status == 200 and answer.get("token"):
                self.token, self.user = answer["token"], user
                return
            if NOT_ENABLED in str(answer.get("error")):
                return
            refused.append(f"{user}: {answer.get('error')}")
        if refused:
            raise CommandExecutionError("etcd refused every login for the lock: " + "; ".join(refused))

    def get(self, key: str) -> tuple[dict | None, int | None]:
        """A key's value (JSON) and its lease, or (None, None)."""
        kvs = self.post("/v3/kv/range", {"key": _b64(key)}).get("kvs") or []
        if not kvs:
            return None, None
        raw = base64.b64decode(kvs[0].get("value") or "").decode(errors="replace")
        try:
            value = json.loads(raw)
        except ValueError:
            value = {"command": raw}
        return value, int(kvs[0]["lease"]) if kvs[0].get("lease") else None


class Lock:
    """A lock taken (or, ``shared``, one this process holds already); ``release`` gives it back."""

    def __init__(self, etcd: Etcd | None, key: str, holder: dict, lease: int | None, ttl: int, shared: bool = False):
        self.etcd, self.key, self.holder, self.lease, self.ttl, self.shared = etcd, key, holder, lease, ttl, shared
        self.lost: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def keep_alive(self) -> Lock:
        """Refresh the lease every third of its TTL, from a daemon thread (it dies with the process)."""
        if self.lease and not self._thread:
            self._thread = threading.Thread(target=self._refresh, name="pgha-lock-keepalive", daemon=True)
            self._thread.start()
        return self

    def _refresh(self) -> None:
        while not self._stop.wait(max(self.ttl / 3.0, 1.0)):
            try:
                answer = self.etcd.post("/v3/lease/keepalive", {"ID": str(self.lease)})
            except CommandExecutionError:
                continue  # etcd away for a moment (a drill stopped it): its leases outlive it; try again
            if not int((answer.get("result") or {}).get("TTL") or 0):
                self.lost = f"the lock's lease {self.lease} expired or was revoked before its command ended"
                return

    def release(self) -> bool:
        """The key deleted if it is still ours, the lease revoked; whether it was ours. A shared lock stays."""
        if self.shared or self.etcd is None:
            return False
        self._stop.set()
        ours = False
        try:
            value, _ = self.etcd.get(self.key)
            ours = bool(value) and value.get("token") == self.holder["token"]
            if ours:
                self.etcd.post("/v3/kv/deleterange", {"key": _b64(self.key)})
            if self.lease:
                self.etcd.post("/v3/lease/revoke", {"ID": str(self.lease)})
        except CommandExecutionError:
            pass  # the lease expires within its TTL anyway
        if os.environ.get(ENV) == f"{self.key}|{self.holder['token']}":
            del os.environ[ENV]
        return ours


def client_of(cluster: Any, login: str = "lock") -> Etcd:
    """
    A client of a cluster's etcd (a ``pgha_model.Cluster``: endpoints, CA, credentials), logging in as the
    lock's own user, or as root while that user is not made yet (``lock``), as root only (``root``: the
    cluster's keys), or as nobody (``anonymous``; also whenever the pillar has etcd's authentication off).
    """
    lock_user = [(cluster.users["etcd_lock"], cluster.secrets.get("etcd_lock_password"))]
    root = [("root", cluster.secrets.get("etcd_root_password"))]
    logins = {"lock": lock_user + root, "root": root, "anonymous": []}[login] if cluster.etcd.auth else []
    return Etcd(list(cluster.etcd.client_urls.values()), cluster.etcd.cafile, logins)


def of(cluster: Any) -> tuple[Etcd, str]:
    """A client of a cluster's etcd for its lock (``client_of``), and the lock's key."""
    return client_of(cluster), cluster.etcd.prefix + KEY


def holder_of(cluster: Any) -> dict | None:
    """Who holds a cluster's lock (its record), None when free, ``{"error": ...}`` when etcd does not say."""
    try:
        return holder(*of(cluster))
    except CommandExecutionError as exc:
        return {"error": str(exc)}


def holder_record(command: str, args: dict, master: str) -> dict:
    """What the lock's value says of its holder."""
    return {"command": command, "args": {k: v for k, v in (args or {}).items() if not k.startswith("_")},
            "master": master, "host": socket.gethostname(), "pid": os.getpid(),
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "since_ts": time.time(),
            "token": uuid.uuid4().hex}


def held_here(etcd: Etcd, key: str) -> dict | None:
    """The holder when this process holds the lock already (an orchestration's), else None."""
    mine = os.environ.get(ENV, "")
    if not mine.startswith(key + "|"):
        return None
    value, _ = etcd.get(key)
    return value if value and value.get("token") == mine.split("|", 1)[1] else None


def mark_pending(key: str) -> None:
    """This process (an orchestration on a new cluster) takes the lock as soon as etcd answers; until then it acts."""
    os.environ[ENV] = f"{key}|pending"


def acquire(etcd: Etcd, key: str, holder: dict, ttl: int, wait: float = 0) -> Lock:
    """
    Take the lock, or share it when this process holds it already; ``Busy``
    naming the holder when another does (after waiting up to ``wait`` s).
    In a process that marked the lock pending (``mark_pending``), an etcd
    that does not answer yet is no refusal: the lock is then a shared no-op.
    """
    try:
        return _acquire(etcd, key, holder, ttl, wait)
    except Busy:
        raise
    except CommandExecutionError as exc:
        if os.environ.get(ENV) != f"{key}|pending" or "no endpoint answered" not in str(exc):
            raise
        return Lock(None, key, dict(holder, pending=str(exc)), None, ttl, shared=True)


def _acquire(etcd: Etcd, key: str, holder: dict, ttl: int, wait: float) -> Lock:
    shared = held_here(etcd, key)
    if shared:
        return Lock(etcd, key, shared, None, ttl, shared=True)
    deadline = time.monotonic() + float(wait)
    while True:
        lease = int(etcd.post("/v3/lease/grant", {"TTL": int(ttl)})["ID"])
        answer = etcd.post("/v3/kv/txn", {
            "compare": [{"target": "CREATE", "key": _b64(key), "createRevision": "0"}],
            "success": [{"requestPut": {"key": _b64(key), "value": _b64(json.dumps(holder)), "lease": str(lease)}}],
            "failure": [{"requestRange": {"key": _b64(key)}}],
        })
        if answer.get("succeeded"):
            os.environ[ENV] = f"{key}|{holder['token']}"
            return Lock(etcd, key, holder, lease, ttl).keep_alive()
        etcd.post("/v3/lease/revoke", {"ID": str(lease)})
        current, _ = etcd.get(key)
        if time.monotonic() >= deadline:
            raise Busy(current or {"command": "an unknown holder"})
        time.sleep(1.0)


def holder(etcd: Etcd, key: str) -> dict | None:
    """Who holds the lock now (its record), or None."""
    value, _ = etcd.get(key)
    return value


def break_lock(etcd: Etcd, key: str) -> dict | None:
    """The lock removed whoever holds it (its lease revoked); the record of the holder it had, or None."""
    value, lease = etcd.get(key)
    if value is None:
        return None
    etcd.post("/v3/kv/deleterange", {"key": _b64(key)})
    if lease:
        etcd.post("/v3/lease/revoke", {"ID": str(lease)})
    return value
