"""
The lab's network: each host its own network stack (a Linux network
namespace ``pgha-<id>``), joined by a bridge (``pgha-br0``) in the machine's
own namespace through a veth pair, the host's end named ``eth0`` and holding
its address. The bridge holds the Salt master's address, the first of the
lab's network; the hosts have no other route, so nothing in them reaches
beyond the lab. A fault drill can then cut one host off from the others
(nftables on that host, as on a real one: ``pgha_host.partition``).

The lab's addresses are 198.18.0.0/24 (RFC 2544's range for benchmark
networks, used by nothing else here): a host at 127.0.0.N on the loopback
layout is 198.18.0.N here (pillar/pgha/lab_netns.sls). Everything is made
by ``ip`` (iproute2) and removed by name: the namespaces, the veths, the
bridge; nothing else of the machine's network is touched.
"""

from __future__ import annotations

import ipaddress
import os
import subprocess

from lab import say

BRIDGE = "pgha-br0"
NETWORK = ipaddress.ip_network("198.18.0.0/24")
GATEWAY = "198.18.0.1"
PREFIX = "pgha-"
LOOPBACK = ipaddress.ip_network("127.0.0.0/8")


def namespace(minion_id: str) -> str:
    return PREFIX + minion_id


def veth(address: str) -> str:
    """The root side of a host's veth pair, named by its address's last octet (an interface name has <= 15 chars)."""
    return f"pgv{ipaddress.ip_address(address).packed[-1]}"


def lab_address(address: str) -> str:
    """A loopback lab's address (127.0.0.N) as the namespaced lab's (198.18.0.N); one of the lab's network kept."""
    ip = ipaddress.ip_address(address)
    if ip in NETWORK:
        return address
    if ip in LOOPBACK:
        return str(NETWORK.network_address + ip.packed[-1])
    raise ValueError(f"{address} is neither in the lab's network {NETWORK} nor on loopback")


def check_nodes(nodes: dict) -> None:
    """Every host's address in the lab's network, none the bridge's, none twice; else a clear error."""
    seen: dict[str, str] = {}
    for node_id, node in sorted(nodes.items()):
        address = str(node.get("address", ""))
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            raise SystemExit(f"lab: pgha:nodes:{node_id}:address: {address!r} is not an IPv4 address") from None
        if ip not in NETWORK or address in (GATEWAY, str(NETWORK.network_address), str(NETWORK.broadcast_address)):
            raise SystemExit(f"lab: pgha:nodes:{node_id}:address: {address} must be a host of the namespaced lab's "
                             f"network {NETWORK} other than {GATEWAY} (the bridge's, the master's); "
                             f"e.g. {lab_address('127.0.0.40')}")
        if address in seen:
            raise SystemExit(f"lab: pgha:nodes:{node_id}:address: {address} is {seen[address]}'s too")
        seen[address] = node_id


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    ret = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and ret.returncode != 0:
        raise SystemExit(f"lab: ip {' '.join(args)}: {ret.stderr.strip() or ret.stdout.strip()}")
    return ret


def namespaces() -> list[str]:
    """The lab's namespaces that exist (``ip netns list``)."""
    listed = _ip("netns", "list", check=False).stdout.split("\n")
    return sorted(line.split()[0] for line in listed if line.startswith(PREFIX))


def bridge_up() -> bool:
    return _ip("link", "show", BRIDGE, check=False).returncode == 0


def wrap(minion_id: str, command: list[str]) -> list[str]:
    """``command`` run inside the host's namespace (``ip netns exec`` execs it: the pid is the command's)."""
    return ["ip", "netns", "exec", namespace(minion_id), *command]


def up(nodes: dict) -> list[str]:
    """The bridge, and each node's namespace and veth with its address; what exists already is kept. Returns what was made."""
    check_nodes(nodes)
    made = []
    if not bridge_up():
        _ip("link", "add", BRIDGE, "type", "bridge")
        made.append(f"bridge {BRIDGE} {GATEWAY}/{NETWORK.prefixlen}")
    if GATEWAY not in _ip("-o", "addr", "show", "dev", BRIDGE).stdout:
        _ip("addr", "add", f"{GATEWAY}/{NETWORK.prefixlen}", "dev", BRIDGE)
    _ip("link", "set", BRIDGE, "up")
    existing = set(namespaces())
    for node_id, node in sorted(nodes.items()):
        ns, root_end, address = namespace(node_id), veth(node["address"]), node["address"]
        if ns not in existing:
            _ip("netns", "add", ns)
            made.append(f"namespace {ns} {address}")
        _ip("-n", ns, "link", "set", "lo", "up")
        if _ip("-n", ns, "link", "show", "eth0", check=False).returncode != 0:
            _ip("link", "del", root_end, check=False)  # a root end left without its peer
            _ip("link", "add", root_end, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _ip("link", "set", root_end, "master", BRIDGE, "up")
        if f" {address}/" not in _ip("-n", ns, "-o", "addr", "show", "dev", "eth0").stdout:
            _ip("-n", ns, "addr", "flush", "dev", "eth0")
            _ip("-n", ns, "addr", "add", f"{address}/{NETWORK.prefixlen}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
    return made


def down() -> list[str]:
    """Every namespace, veth and the bridge the lab made (by their names); what was removed."""
    removed = []
    for ns in namespaces():
        _ip("netns", "del", ns, check=False)  # its eth0 goes with it, and so the veth's root end
        removed.append(ns)
    if bridge_up():
        _ip("link", "del", BRIDGE, check=False)
        removed.append(BRIDGE)
    return removed


def processes_inside(ns: str) -> list[int]:
    """The pids running in a namespace (``ip netns pids``): a namespace is removed only when none is left."""
    return [int(pid) for pid in _ip("netns", "pids", ns, check=False).stdout.split() if pid.isdigit()]


def available() -> str | None:
    """Why the machine cannot make the namespaced lab (None when it can): ``ip`` and the right to make namespaces."""
    if subprocess.run(["which", "ip"], capture_output=True, check=False).returncode != 0:
        return "no `ip` (Debian's iproute2)"
    if os.geteuid() != 0:
        return "not root"
    return None


def show(nodes: dict) -> None:
    for node_id, node in sorted(nodes.items(), key=lambda kv: ipaddress.ip_address(kv[1]["address"])):
        say(f"  {namespace(node_id):<18} eth0 {node['address']}/{NETWORK.prefixlen} <-> {veth(node['address'])} on {BRIDGE}")
