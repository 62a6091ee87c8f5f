"""
What pgha's execution modules, states and runner share about a running
cluster: HTTP with basic authentication (and TLS), Patroni's REST API as a
client over the members' URLs, the member model with the one set of health
rules every check uses, and HAProxy's CSV statistics.

Plain Python on the standard library and ``salt.exceptions``, no loader
dunders: Salt reaches it as ``__utils__["pgha_cluster.<function>"]`` once
``saltutil.sync_all`` (or ``sync_utils``) has shipped it. Errors are
``CommandExecutionError`` with a message an operator can act on.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import re
import ssl
import types
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError

HTTP_TIMEOUT = 3.0
# Hints for answers whose text (Python's default error page) says little.
HINTS = {
    401: "the REST API refused the credentials: compare pgha:users:restapi and pgha:secrets:restapi_password "
    "with restapi:authentication in Patroni's configuration file",
    403: "the REST API refused this client (restapi allowlist or client certificate)",
    409: "the configuration in the DCS changed meanwhile; run the command again",
    502: "the DCS holds no configuration for this cluster (is it bootstrapped, is etcd reachable?)",
    503: "Patroni could not do it now (see its message; is the DCS reachable and the cluster initialised?)",
}
LEADER_ROLES = ("leader", "standby_leader", "primary", "master")
RUNNING_STATES = ("running", "streaming")
# HAProxy's CSV rows that are not servers.
NOT_SERVERS = ("FRONTEND", "BACKEND")


# ---------------------------------------------------------------------------
# HTTP
# ---------------------------------------------------------------------------


def basic_auth(user: str, password: str) -> dict:
    """The Authorization header of HTTP basic authentication."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": "Basic " + token}


def request(url: str, method: str = "GET", body: Any = None, auth: tuple[str, str] | None = None,
            timeout: float = HTTP_TIMEOUT, cafile: str | None = None) -> tuple[int, Any]:
    """
    One HTTP request. Returns (status, answer parsed as JSON when it is,
    text otherwise); an error status is returned, not raised. Raises
    ``CommandExecutionError`` when the server is unreachable or silent.
    """
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data is not None else {}
    if auth:
        headers.update(basic_auth(*auth))
    try:
        context = ssl.create_default_context(cafile=cafile) if url.startswith("https:") else None
    except (OSError, ssl.SSLError) as exc:
        raise CommandExecutionError(f"{url}: cannot use the CA {cafile}: {exc}") from exc
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    except TimeoutError as exc:
        raise CommandExecutionError(
            f"{url} gave no answer within {timeout:g} s ({method}); "
            "if it was a change, check its outcome before retrying"
        ) from exc
    except (urllib.error.URLError, OSError) as exc:
        raise CommandExecutionError(f"{url} unreachable: {getattr(exc, 'reason', exc)}") from exc
    text = raw.decode(errors="replace")
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text.strip()


def message(body: Any) -> str:
    """The server's own words from an answer: its JSON, its text, or the message of an error page."""
    if isinstance(body, (dict, list)):
        return json.dumps(body, sort_keys=True)
    text = str(body or "").strip()
    if "<html" in text.lower() or "<p>" in text.lower():
        found = re.search(r"Message:\s*(.*?)\s*</p>", text, re.DOTALL)
        text = html.unescape(found.group(1)).strip() if found else re.sub(r"<[^>]+>", " ", text)
        text = " ".join(text.split())
    return text or "(empty answer)"


# ---------------------------------------------------------------------------
# the member model and its health rules
# ---------------------------------------------------------------------------


def parse_members(cluster: dict, replication: list | None = None) -> list[dict]:
    """
    Members from Patroni's ``GET /cluster``, normalised: name, role (leader,
    replica, sync_standby, quorum_standby), state, host, port, timeline, lag
    (bytes; 0 for the leader, None when unknown), ``streaming`` (from the
    leader's replication list when given, else None: unknown),
    pending_restart and tags. Sorted by name.
    """
    streaming = {entry.get("application_name"): entry.get("state") == "streaming" for entry in (replication or [])}
    members = []
    for raw in cluster.get("members", []):
        is_leader = raw.get("role") in LEADER_ROLES
        lag = raw.get("lag")
        members.append(
            {
                "name": raw.get("name"),
                "role": "leader" if is_leader else raw.get("role"),
                "state": raw.get("state"),
                "host": raw.get("host"),
                "port": raw.get("port"),
                "timeline": raw.get("timeline"),
                "lag": lag if isinstance(lag, int) else (0 if is_leader else None),
                "streaming": streaming.get(raw.get("name"), False) if replication is not None else None,
                "pending_restart": bool(raw.get("pending_restart", False)),
                "tags": raw.get("tags", {}),
            }
        )
    return sorted(members, key=lambda member: member["name"] or "")


def leader_of(members: list[dict]) -> dict | None:
    """The one running leader, or None (no leader, or more than one)."""
    leaders = [m for m in members if m["role"] == "leader" and m["state"] == "running"]
    return leaders[0] if len(leaders) == 1 else None


def follower_problems(member: dict, lead: dict, max_lag: int) -> list[str]:
    """What keeps one member from following the leader: running, on its timeline, streaming, lag bound."""
    name, problems = member["name"], []
    if member["state"] not in RUNNING_STATES:
        problems.append(f"{name} is {member['state']}")
    if member["timeline"] != lead["timeline"]:
        problems.append(f"{name} is on timeline {member['timeline']}, the leader {lead['name']} on {lead['timeline']}")
    if member["streaming"] is False:
        problems.append(f"{name} does not stream from the leader {lead['name']}")
    if member["lag"] is None or member["lag"] > max_lag:
        problems.append(f"{name} lags {member['lag']} bytes (bound {max_lag})")
    return problems


def health_problems(members: list[dict], expected: int | None = None, max_lag: int = 0) -> list[str]:
    """
    What keeps a member list from being healthy, every problem at once
    (empty when healthy): exactly one leader, running; ``expected`` members
    in all; every other member running, on the leader's timeline, streaming
    from it (unknown counts as streaming) and within ``max_lag`` bytes.
    """
    leaders = [m for m in members if m["role"] == "leader"]
    if len(leaders) != 1:
        names = ", ".join(m["name"] for m in leaders) or "none"
        return [f"expected exactly one leader, saw {len(leaders)} ({names})"]
    lead = leaders[0]
    problems = []
    if lead["state"] != "running":
        problems.append(f"leader {lead['name']} is {lead['state']}, not running")
    if expected is not None and len(members) != expected:
        problems.append(f"expected {expected} members, saw {len(members)} ({', '.join(m['name'] for m in members)})")
    for member in members:
        if member is not lead:
            problems.extend(follower_problems(member, lead, max_lag))
    return problems


def cluster_status(api: PatroniAPI, read_etcd: Callable[[], dict], read_haproxy: Callable[[], dict]) -> dict:
    """
    The runner's status: the members (with their running Patroni version),
    the leader, etcd's health and HAProxy's servers by listener;
    whatever cannot be read says so in place (no member, an ``error``).
    """
    try:
        members = api.members()
    except CommandExecutionError:
        members = []
    versions = api.versions()
    for member in members:
        member["patroni_version"] = versions.get(member["name"])
    leader = leader_of(members)
    return {"members": members, "leader": leader["name"] if leader else None,
            "etcd": _read(read_etcd, {"healthy": False, "endpoints": {}}), "haproxy": _read(read_haproxy, {})}


def _read(reader: Callable[[], dict], empty: dict) -> dict:
    try:
        return reader()
    except CommandExecutionError as exc:
        return dict(empty, error=str(exc))


def cluster_problems(status: dict, expected: int, max_lag: int) -> list[str]:
    """
    The whole cluster's verdict from the runner's status (members, leader,
    etcd's health, HAProxy's servers by listener): the members' health, etcd
    healthy, HAProxy's leader port (``postgres``) sending writes to the
    leader alone.
    """
    problems = health_problems(status["members"], expected, max_lag)
    etcd = status["etcd"]
    if not etcd.get("healthy"):
        problems.append("etcd is not healthy: " + str(etcd.get("error") or etcd.get("endpoints")))
    haproxy = status["haproxy"]
    if "error" in haproxy:
        problems.append(f"HAProxy: {haproxy['error']}")
        return problems
    up = sorted(server for server, state in haproxy.get("postgres", {}).items() if routes(state))
    if status["leader"] and up != [status["leader"]]:
        problems.append(f"HAProxy sends writes to {up or 'no server'}, the leader is {status['leader']}")
    return problems


def rules() -> types.SimpleNamespace:
    """The health rules as one object, for code that is handed them (the drill's engine)."""
    return types.SimpleNamespace(leader_of=leader_of, health_problems=health_problems,
                                 follower_problems=follower_problems)


# ---------------------------------------------------------------------------
# Patroni's REST API
# ---------------------------------------------------------------------------


class PatroniAPI:
    """
    The REST APIs of a cluster's members: ``urls`` maps each member to its
    base URL. GETs go unauthenticated; changes carry ``auth`` (user,
    password). ``cafile`` verifies https.
    """

    def __init__(self, urls: dict, auth: tuple[str, str] | None = None, cafile: str | None = None,
                 timeout: float = HTTP_TIMEOUT):
        self.urls, self.auth, self.cafile, self.timeout = dict(urls), auth, cafile, timeout

    def url(self, member: str) -> str:
        if member not in self.urls:
            raise CommandExecutionError(
                f"patroni: {member!r} is not a PostgreSQL node of the pgha pillar (members: {', '.join(sorted(self.urls))})"
            )
        return self.urls[member]

    def raw(self, member: str, path: str, method: str = "GET", body: Any = None, auth: bool = False,
            timeout: float | None = None) -> tuple[int, Any]:
        """(status, answer) of one member; unreachable raises."""
        try:
            return request(self.url(member) + path, method=method, body=body, auth=self.auth if auth else None,
                           timeout=timeout or self.timeout, cafile=self.cafile)
        except CommandExecutionError as exc:
            raise CommandExecutionError(f"patroni: REST API {exc}") from exc

    def call(self, member: str, path: str, method: str = "GET", body: Any = None, ok: tuple = (200,),
             auth: bool = False, timeout: float | None = None) -> Any:
        """The answer of one member; an answer outside ``ok`` raises with Patroni's words and a hint."""
        status, answer = self.raw(member, path, method, body, auth, timeout)
        raise_for(status, answer, method, path, member, ok)
        return answer

    def order(self, first: list[str] | None = None) -> list[str]:
        """Members to ask, ``first`` ones first, then the rest in name order."""
        head = [name for name in (first or []) if name in self.urls]
        return head + [name for name in sorted(self.urls) if name not in head]

    def any_member(self, path: str, method: str = "GET", body: Any = None, ok: tuple = (200,), auth: bool = False,
                   timeout: float | None = None, first: list[str] | None = None) -> tuple[str, Any]:
        """
        A cluster-wide call (the DCS answers, whichever member relays it): the
        members in turn, moving on only when one is unreachable. Returns
        (member, answer); an error answer is raised, not retried elsewhere.
        """
        problems = []
        for name in self.order(first):
            try:
                status, answer = self.raw(name, path, method, body, auth, timeout)
            except CommandExecutionError as exc:
                problems.append(str(exc))
                continue
            raise_for(status, answer, method, path, name, ok)
            return name, answer
        raise CommandExecutionError(f"patroni: no member answered {method} {path}: " + "; ".join(problems))

    def cluster(self, first: list[str] | None = None) -> dict:
        """``GET /cluster`` from the first member that answers it."""
        problems = []
        for name in self.order(first):
            try:
                status, answer = self.raw(name, "/cluster")
            except CommandExecutionError as exc:
                problems.append(str(exc))
                continue
            if status == 200 and isinstance(answer, dict):
                return answer
            problems.append(f"{name}: GET /cluster answered {status}")
        raise CommandExecutionError("patroni: no member answered GET /cluster: " + "; ".join(problems))

    def members(self, first: list[str] | None = None) -> list[dict]:
        """The members (``parse_members``) with ``streaming`` from the leader's replication list."""
        cluster = self.cluster(first)
        lead = leader_of(parse_members(cluster))
        if not lead:
            return parse_members(cluster)
        try:
            status = self._status_of(cluster, lead["name"])
        except CommandExecutionError:
            return parse_members(cluster)
        parsed = parse_members(cluster, status.get("replication", []))
        for member in parsed:
            # /cluster may leave the leader's timeline out on some versions: its own is authoritative.
            if member["name"] == lead["name"] and member["timeline"] is None:
                member["timeline"] = status.get("timeline")
        return parsed

    def _status_of(self, cluster: dict, name: str) -> Any:
        """
        ``GET /patroni`` of a member: at pillar's URL, or at the ``api_url``
        Patroni has for it when pillar no longer lists it (a member leading
        while it is retired).
        """
        if name in self.urls:
            return self.call(name, "/patroni")
        api_url = next((m.get("api_url") for m in cluster.get("members", []) if m.get("name") == name), None)
        if not api_url:
            raise CommandExecutionError(f"patroni: no REST API address for {name}")
        status, answer = request(api_url, timeout=self.timeout, cafile=self.cafile)
        raise_for(status, answer, "GET", "/patroni", name, (200,))
        return answer

    def versions(self) -> dict:
        """Each member's running Patroni version (``GET /patroni``), None where it does not answer."""
        found = {}
        for name in sorted(self.urls):
            try:
                status = self.call(name, "/patroni", ok=(200, 503))
                found[name] = (status.get("patroni") or {}).get("version") if isinstance(status, dict) else None
            except CommandExecutionError:
                found[name] = None
        return found


def raise_for(status: int, body: Any, method: str, path: str, where: str, ok: tuple) -> None:
    """An answer outside ``ok`` as an error carrying Patroni's own words and a hint."""
    if status in ok:
        return
    hint = HINTS.get(status)
    raise CommandExecutionError(
        f"patroni: {method} {path} on {where} answered {status}: {message(body)}" + (f" ({hint})" if hint else "")
    )


def patroni_api(urls: dict, auth: tuple[str, str] | None = None, cafile: str | None = None,
                timeout: float = HTTP_TIMEOUT) -> PatroniAPI:
    """A client of the members' REST APIs (see ``PatroniAPI``)."""
    return PatroniAPI(urls, auth=auth, cafile=cafile, timeout=timeout)


def patroni_api_of(cluster: Any) -> PatroniAPI:
    """The REST API client of a cluster's model (``pgha_model.Cluster``), with its REST credentials."""
    auth = (cluster.users["restapi"], cluster.secrets.get("restapi_password"))
    return PatroniAPI(cluster.restapi_urls, auth=auth, cafile=cluster.restapi_cafile)


def status_table(data: dict) -> str:
    """The runner's status (members, etcd's health, HAProxy's servers) as a text table."""
    lines = ["Patroni members",
             f"  {'member':<14}{'role':<14}{'state':<12}{'TL':>4}{'lag (bytes)':>13}  {'streaming':<11}patroni"]
    for m in data["members"]:
        streaming = "-" if m["role"] == "leader" else ("yes" if m["streaming"] else "NO")
        lag = "" if m["lag"] is None else m["lag"]
        lines.append(f"  {m['name']:<14}{m['role']:<14}{m['state']:<12}{m['timeline'] or '':>4}{lag:>13}  "
                     f"{streaming:<11}{m.get('patroni_version') or '?'}")
    if not data["members"]:
        lines.append("  (no Patroni member answered)")
    etcd = data["etcd"]
    over = {True: " (https)", False: " (http)"}.get(etcd.get("tls"), "")
    lines.append(f"etcd: {'healthy' if etcd.get('healthy') else 'NOT HEALTHY'}{over}")
    for name, entry in sorted(etcd.get("endpoints", {}).items()):
        if entry.get("reachable"):
            lines.append(f"  {name:<14}{entry['endpoint']:<22}leader {entry.get('leader')}  term {entry.get('raft_term')}"
                         f"  index {entry.get('raft_index')}  db {entry.get('db_size')} B")
        else:
            lines.append(f"  {name:<14}{entry.get('endpoint', ''):<22}UNREACHABLE {entry.get('error', '')}")
    if etcd.get("error"):
        lines.append(f"  {etcd['error']}")
    lock = data.get("lock")
    lines.append("lock: " + ("free" if lock is None else f"NOT READ ({lock['error']})" if "error" in lock
                             else f"held by {lock.get('command')} (master {lock.get('master')}, pid {lock.get('pid')}, "
                                  f"since {lock.get('since')})"))
    if data["haproxy"].get("error"):
        lines += ["HAProxy", f"  {data['haproxy']['error']}"]
    for listener, servers in data["haproxy"].items():
        if isinstance(servers, dict):
            lines.append(f"HAProxy backends (listen {listener})")
            lines += [f"  {server:<14}{state}" for server, state in sorted(servers.items())]
    return "\n".join(lines)


# ---------------------------------------------------------------------------
# HAProxy
# ---------------------------------------------------------------------------


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") and str(value).lstrip("-").isdigit() else None


def parse_haproxy_stats(text: str) -> dict:
    """
    HAProxy's CSV statistics (``show stat``, or the stats page's ``;csv``):
    proxy -> server -> status (UP, DOWN, DRAIN, MAINT, or a transition such
    as ``UP 1/2``), address, weight, last check, sessions, seconds since the
    last change. Frontends and backends themselves are left out.
    """
    found: dict = {}
    for row in csv.DictReader(io.StringIO(text.lstrip("# "))):
        proxy, server = row.get("pxname"), row.get("svname")
        if not proxy or server in NOT_SERVERS or server is None:
            continue
        found.setdefault(proxy, {})[server] = {
            "status": row.get("status") or "",
            "address": row.get("addr") or None,
            "weight": _int(row.get("weight")),
            "check_status": row.get("check_status") or None,
            "check_code": _int(row.get("check_code")),
            "check_desc": row.get("check_desc") or None,
            "sessions": _int(row.get("scur")),
            "last_change_s": _int(row.get("lastchg")),
        }
    return found


def routes(status: Any) -> bool:
    """Whether HAProxy sends new connections to a server in this state ('UP', or 'UP 1/3' while going down)."""
    return str(status).startswith("UP")


def haproxy_stats_page(cluster: Any, timeout: float = HTTP_TIMEOUT) -> dict:
    """Every proxy's servers (``parse_haproxy_stats``) from a cluster's stats page, with the pillar's credentials."""
    url = cluster.haproxy.stats_url
    auth = (cluster.users["haproxy_stats"], cluster.secrets.get("haproxy_stats_password"))
    try:
        status, text = request(url, auth=auth, timeout=timeout)
    except CommandExecutionError as exc:
        raise CommandExecutionError(f"pgha: HAProxy's stats page {exc}") from exc
    if status == 401:
        raise CommandExecutionError(
            f"pgha: HAProxy's stats page {url} refused the credentials: compare pgha:users:haproxy_stats and "
            "pgha:secrets:haproxy_stats_password with 'stats auth' in haproxy.cfg"
        )
    if status != 200:
        raise CommandExecutionError(f"pgha: HAProxy's stats page {url} answered {status}: {message(text)[:200]}")
    return parse_haproxy_stats(str(text))
