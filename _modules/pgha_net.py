"""
Network faults on this host, for the failover drill's partitions: this host
cut off from other hosts' addresses (every packet to or from them dropped,
both ways) by an nftables table of its own, ``inet pgha_partition``, and
healed by removing that table. Nothing else of the host's firewall is
touched: the table hooks input and output at a priority of its own and
drops only the addresses in its set.

Every cut address carries a timeout in the kernel (an nftables set element
with ``timeout``): a cut heals by itself when the drill that made it can no
longer undo it (the master gone, the minion stopped), ``heal`` undoes it at
once. The Salt master's address is never cut by the drill: the minion keeps
answering, and the master is the client that still reaches a cut-off
leader.

Needs ``nft`` (Debian's nftables) and hosts with their own network stacks:
on the loopback lab every host shares one, and a cut is refused.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import shutil
import time

from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha_net"

TABLE = "pgha_partition"
RULESET = """table inet {table} {{
  set cut {{ type ipv4_addr; flags timeout; }}
  chain input {{ type filter hook input priority -5; policy accept; ip saddr @cut drop; }}
  chain output {{ type filter hook output priority -5; policy accept; ip daddr @cut drop; }}
}}
"""


def __virtual__():
    return __virtualname__


def _nft(*args: str, stdin: str | None = None, ok: bool = False) -> dict:
    if not shutil.which("nft"):
        raise CommandExecutionError("pgha_net: no `nft` on this host (Debian's nftables package): "
                                    "a partition drill cuts the network with nftables")
    ret = __salt__["cmd.run_all"](["nft", *args], stdin=stdin, python_shell=False, ignore_retcode=True,
                                  output_loglevel="quiet")
    if ret["retcode"] != 0 and not ok:
        raise CommandExecutionError(f"pgha_net: nft {' '.join(args)}: {(ret.get('stderr') or ret.get('stdout') or '').strip()}")
    return ret


def _route_device(address: str) -> tuple[str | None, str | None]:
    """The device and the route type this host reaches ``address`` through (``ip route get``)."""
    ret = __salt__["cmd.run_all"](["ip", "-j", "route", "get", address], python_shell=False, ignore_retcode=True,
                                  output_loglevel="quiet")
    if ret["retcode"] != 0:
        return None, None
    try:
        routes = json.loads(ret["stdout"] or "[]")
    except ValueError:
        return None, None
    route = routes[0] if routes else {}
    return route.get("dev"), route.get("type")


def _problems(addresses) -> tuple[list[str], list[str]]:
    """The addresses, checked, and what keeps this host from being cut off from them."""
    if isinstance(addresses, str):
        addresses = [part for part in addresses.split(",") if part.strip()]
    if not addresses:
        return [], ["addresses: none given"]
    checked, problems = [], []
    for address in addresses:
        try:
            ip = ipaddress.IPv4Address(str(address).strip())
        except ValueError:
            problems.append(f"addresses: {address!r} is not an IPv4 address")
            continue
        device, kind = _route_device(str(ip))
        if kind == "local" or device == "lo":
            problems.append(
                f"{ip} is reached through this host's loopback (dev lo): this host and {ip} share one network "
                "stack (the loopback lab), where no cut can separate them; partitions need hosts with their own "
                "(the namespaced lab: make lab; real hosts)")
        checked.append(str(ip))
    if not shutil.which("nft"):
        problems.append("no `nft` on this host (Debian's nftables package): a partition drill cuts the network "
                        "with nftables")
    return checked, problems


def _checked(addresses) -> list[str]:
    checked, problems = _problems(addresses)
    if problems:
        raise CommandExecutionError(f"pgha_net.cut: {problems[0]}")
    return checked


def check(addresses) -> dict:
    """
    Whether this host can be cut off from ``addresses`` (a list, or
    comma-separated), changing nothing: ``ok`` and the ``problems`` (an
    address this host reaches through its loopback, i.e. one network stack
    shared with it; no ``nft``).

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_net.check 198.18.0.5,198.18.0.32
    """
    checked, problems = _problems(addresses)
    return {"ok": not problems, "addresses": checked, "problems": problems}


def cut(addresses, seconds: float = 60) -> dict:
    """
    Cut this host off from ``addresses`` (a list, or comma-separated) for
    ``seconds`` at most: every packet to or from them dropped until ``heal``
    or the time is up. Returns ``cut`` (the addresses), ``cut_at`` (the
    moment the rules were in place, epoch seconds) and ``heals_by`` (when
    the kernel heals it by itself).

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_net.cut 198.18.0.5,198.18.0.32 seconds=30
    """
    checked = _checked(addresses)
    try:
        seconds = int(float(seconds))
    except (TypeError, ValueError):
        raise CommandExecutionError(f"pgha_net.cut: seconds: {seconds!r} is not a number") from None
    if not 1 <= seconds <= 3600:
        raise CommandExecutionError(f"pgha_net.cut: seconds: {seconds} must be between 1 and 3600")
    elements = ", ".join(f"{address} timeout {seconds}s" for address in checked)
    _nft("-f", "-", stdin=RULESET.format(table=TABLE) + f"add element inet {TABLE} cut {{ {elements} }}\n")
    at = time.time()
    log.warning("pgha_net: this host cut off from %s for %s s at most (nft table inet %s)", ", ".join(checked),
                seconds, TABLE)
    return {"cut": checked, "cut_at": at, "heals_by": at + seconds}


def heal() -> dict:
    """
    Undo ``cut``: the table ``inet pgha_partition`` removed. ``healed``: whether there was one.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_net.heal
    """
    ret = _nft("delete", "table", "inet", TABLE, ok=True)
    healed = ret["retcode"] == 0
    if healed:
        log.warning("pgha_net: partition healed (nft table inet %s removed)", TABLE)
    return {"healed": healed, "healed_at": time.time()}


def cuts() -> list[str]:
    """
    The addresses this host is cut off from now ([] when none).

    CLI Example:

    .. code-block:: bash

        salt '*' pgha_net.cuts
    """
    ret = _nft("-j", "list", "set", "inet", TABLE, "cut", ok=True)
    if ret["retcode"] != 0:
        return []
    found = []
    for item in json.loads(ret["stdout"] or "{}").get("nftables", []):
        for element in (item.get("set") or {}).get("elem", []) or []:
            value = element.get("elem", {}).get("val") if isinstance(element, dict) else element
            found.append(str(value))
    return sorted(found)
