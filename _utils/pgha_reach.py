"""
The cluster as the runner reaches it, in one small object: its model
(``pgha_model.Cluster``), its members as Patroni's REST API reports them,
a function run on one minion, a state applied on one minion, HAProxy's
servers, and the health rules every check uses (``pgha_cluster``). The
drill, the rolling operations, scaling in, etcd's membership and the cold
start all act through it; the runner makes it (``salt.client``), the unit
tests hand in a fake.

Plain Python; reached as ``__utils__["pgha_reach.<function>"]``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from salt.exceptions import CommandExecutionError

# What a failed state run may carry into a one-line error.
MAX_FAILURE_TEXT = 1500


class Reach:
    """
    ``cluster``: the model; ``call(minion, function, *args, wait=60,
    **kwargs)``: its answer, or ``CommandExecutionError`` with its message;
    ``api``: the members' REST APIs (``pgha_cluster.PatroniAPI``);
    ``stats``: HAProxy's servers by listener ({listener: {server: entry}});
    ``rules``: leader_of, health_problems, follower_problems of
    ``pgha_cluster``; ``etcd(login)``: a client of the cluster's etcd
    (``pgha_lock.Etcd``) logged in as ``root`` or the ``lock``'s user, or
    ``anonymous``. (A plain class: Salt's loader runs utility modules
    outside sys.modules, where dataclasses cannot resolve their annotations.)
    """

    def __init__(self, cluster: Any, call: Callable[..., Any], api: Any, stats: Callable[[], dict], rules: Any,
                 etcd: Callable[[str], Any] | None = None):
        self.cluster, self._call, self.api, self._stats, self.rules = cluster, call, api, stats, rules
        self._etcd = etcd

    def call(self, minion: str, function: str, *args: Any, wait: int = 60, **kwargs: Any) -> Any:
        """One execution function on one minion."""
        return self._call(minion, function, *args, wait=wait, **kwargs)

    def apply(self, minion: str, sls: str, wait: int = 600, pillar: dict | None = None) -> Any:
        """``state.apply sls`` on one minion (with a pillar override); a failure as one error of bounded length."""
        try:
            return self.call(minion, "state.apply", sls, wait=wait, **({"pillar": pillar} if pillar else {}))
        except CommandExecutionError as exc:
            text = str(exc)  # a failed state run's whole return: what a summary line can carry
            cut = text if len(text) <= MAX_FAILURE_TEXT else text[:MAX_FAILURE_TEXT] + " ..."
            raise CommandExecutionError(f"{sls} on {minion} failed: {cut}") from None

    def members(self, first: list[str] | None = None) -> list[dict]:
        """The members with their health facts (as ``first``, those asked first, see them); [] when none answers."""
        try:
            return self.api.members(first) if first else self.api.members()
        except CommandExecutionError:
            return []

    def leader(self, members: list[dict] | None = None) -> dict | None:
        """The one running leader (of ``members``, else of the members now), or None."""
        return self.rules.leader_of(self.members() if members is None else members)

    def haproxy(self, listener: str | None = "postgres") -> dict:
        """Each server's state (UP, DOWN, ...) in one listener, or (None) {listener: {server: state}} of every one."""
        names = [entry.name for entry in self.cluster.haproxy.listeners]
        found = {name: {server: entry["status"] for server, entry in servers.items()}
                 for name, servers in self._stats().items() if name in names}
        return found.get(listener, {}) if listener else {name: found[name] for name in names if name in found}

    def etcd(self, login: str = "root") -> Any:
        """A client of the cluster's etcd: as ``root``, as the ``lock``'s user, or ``anonymous``."""
        return self._etcd(login)

    def with_cluster(self, cluster: Any) -> Reach:
        """The same ways in, for another model of the cluster (one counting leaving members, say)."""
        return Reach(cluster, self._call, self.api, self._stats, self.rules, self._etcd)


def caller(conf_file: str) -> Callable[..., Any]:
    """
    ``call(minion, function, *args, wait=60, **kwargs)`` through the master's local client (its
    configuration ``conf_file``): the minion's answer, or ``CommandExecutionError`` with its message.
    """
    import salt.client  # pylint: disable=import-outside-toplevel  # only on the master

    def call(tgt: str, fun: str, *args: Any, wait: int = 60, **kwargs: Any) -> Any:
        with salt.client.get_local_client(conf_file) as client:
            ret = client.cmd(tgt, fun, arg=list(args), kwarg=kwargs or None, timeout=wait, full_return=True)
        if tgt not in ret:
            raise CommandExecutionError(f"pgha: minion {tgt} did not answer {fun} within {wait} s")
        answer = ret[tgt]
        if not isinstance(answer, dict) or answer.get("retcode", 0) != 0:
            detail = answer.get("ret") if isinstance(answer, dict) else answer
            raise CommandExecutionError(f"pgha: {fun} on {tgt} failed: {detail}")
        return answer.get("ret")

    return call


def reach(**fields: Any) -> Reach:
    """A ``Reach`` (see its fields)."""
    return Reach(**fields)
