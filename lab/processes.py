"""
The lab's processes, by pid file: the salt-master, the five minions, each
host's supervisord and the services it runs (etcd, Patroni, PostgreSQL,
HAProxy). Starting records pids; stopping ends exactly those processes,
never by name.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

from lab import LAB, MINIONS, REPO, VENV_BIN, config, netns, pki, say

# What other users may do in the lab's directory: traverse to the hosts'
# roots (PostgreSQL and etcd run as their own users), nothing else. Every
# directory that holds a secret or a job's return is root's alone.
LAB_MODE = 0o711
PRIVATE = ("etc", "master", "minions", "pillar", "pki", "logs", "run", "reports")


def read_pid(path: str) -> int | None:
    """The pid a pid file holds (its first line), None without one."""
    try:
        words = pathlib.Path(path).read_text(encoding="utf-8").split()
    except OSError:
        return None
    return int(words[0]) if words and words[0].isdigit() else None


def alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pids(items: list[tuple[str, int | None]], grace: float = 60.0) -> None:
    """
    SIGTERM to every (what, pid) at once (a postmaster SIGINT, its fast shutdown, as PostgreSQL's systemd unit
    stops it: SIGTERM would wait for every client to leave), then wait for them all; SIGKILL to any still
    running after grace.
    """
    items = [(what, pid) for what, pid in items if alive(pid)]
    sent = {pid: signal.SIGINT if _is_postgres(pid) else signal.SIGTERM for _, pid in items}
    for what, pid in items:
        say(f"  stopping {what} (pid {pid})")
        os.kill(pid, sent[pid])
    deadline = time.monotonic() + grace
    while any(alive(pid) for _, pid in items) and time.monotonic() < deadline:
        time.sleep(0.2)
    for what, pid in items:
        if alive(pid):
            say(f"  {what} (pid {pid}) ignored {sent[pid].name} for {grace:.0f} s: SIGKILL")
            os.kill(pid, signal.SIGKILL)
            while alive(pid):
                time.sleep(0.1)


def _command(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            return handle.read().strip()
    except OSError:
        return "process"


def _is_postgres(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            return handle.read().strip() in ("postgres", "postmaster")
    except OSError:
        return False


class Lab:
    """One lab (or one test run's hosts): its directory, its processes."""

    def __init__(self, lab: str = LAB, repo: str = REPO, minions: tuple[str, ...] | None = None):
        self.lab, self.repo, self._minions = lab, repo, minions
        self.conf_dir = os.path.join(lab, "etc", "salt")
        self.nodes: dict = {}

    @property
    def namespaced(self) -> bool:
        """Whether this lab's hosts live in network namespaces (lab/netns.py): what its record says."""
        return config.recorded_network(self.lab) == "netns"

    @property
    def minions(self) -> tuple[str, ...]:
        """
        The lab's minions: the seed's five and every other one it has a
        configuration for (a node added in the nodes file, or one removed
        from it since: its minion stays to retire it, as a real host's would).
        """
        if self._minions is not None:
            return self._minions
        made = os.path.join(self.lab, "minions")
        extra = sorted(set(os.listdir(made)) - set(MINIONS)) if os.path.isdir(made) else []
        return MINIONS + tuple(extra)

    def nodes_sls(self) -> str:
        return os.path.join(self.lab, "pillar", config.NODES_SLS + ".sls")

    # paths -----------------------------------------------------------------
    def host_root(self, minion_id: str) -> str:
        return os.path.join(self.lab, "hosts", minion_id)

    def minion_conf_dir(self, minion_id: str) -> str:
        return os.path.join(self.lab, "minions", minion_id, "etc")

    def pidfiles(self) -> list[tuple[str, str]]:
        """Every pid file of the lab: supervisords first (their services), then Salt."""
        files = [(f"supervisord of {m}", os.path.join(self.host_root(m), "run", "pgha", "supervisord.pid"))
                 for m in self.minions]
        files += [(f"salt-minion {m}", os.path.join(self.lab, "run", f"salt-minion-{m}.pid")) for m in self.minions]
        files.append(("salt-master", os.path.join(self.lab, "run", "salt-master.pid")))
        return files

    def reaper_pidfile(self, minion_id: str) -> str:
        return os.path.join(self.lab, "run", f"reaper-{minion_id}.pid")

    def leftovers(self) -> list[tuple[str, str]]:
        """PostgreSQL postmasters of the lab's hosts (started by their Patroni)."""
        return [(f"postgres of {m}", os.path.join(self.host_root(m), "var", "lib", "patroni", "postmaster.pid"))
                for m in self.minions]

    def salt(self, tool: str, *args: str, check: bool = True, timeout: int | None = None):
        cmd = [os.path.join(VENV_BIN, tool), "-c", self.conf_dir, *args]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)

    # set-up ----------------------------------------------------------------
    def configure(self) -> dict[str, str]:
        """Salt's files, the lab's pillar and passwords, the PKI; private where they hold secrets."""
        topology = config.topology(self.lab, os.environ.get("TOPOLOGY") or None)  # an unknown one refused before any change
        network = config.network(self.lab, os.environ.get("LAB_NETWORK") or None)
        nodes = config.lab_nodes(self.repo, topology, self.nodes_sls() if os.path.exists(self.nodes_sls()) else None,
                                 network)
        if network == "netns":
            why = netns.available()
            if why:
                raise SystemExit(f"lab: the namespaced lab needs `ip` and root ({why}); LAB_NETWORK=loopback "
                                 "makes the lab on loopback instead (no partition drills there)")
            netns.check_nodes(nodes)
        previous = config.recorded_network(self.lab)
        if previous and previous != network:
            self.move(previous, network)
        os.makedirs(self.lab, exist_ok=True)
        os.chmod(self.lab, LAB_MODE)
        for sub in PRIVATE:
            os.makedirs(os.path.join(self.lab, sub), mode=0o700, exist_ok=True)
            os.chmod(os.path.join(self.lab, sub), 0o700)
        os.makedirs(os.path.join(self.lab, "hosts"), mode=0o755, exist_ok=True)
        master = netns.GATEWAY if network == "netns" else "127.0.0.1"
        config.write(os.path.join(self.conf_dir, "master"), config.master_config(self.lab, self.repo, interface=master),
                     mode=0o600)
        if not os.path.exists(self.nodes_sls()):
            config.write(self.nodes_sls(), config.NODES_TEMPLATE, mode=0o600)
        self.nodes = nodes = config.lab_nodes(self.repo, topology, self.nodes_sls(), network)
        for minion_id in nodes:
            config.write(os.path.join(self.minion_conf_dir(minion_id), "minion"),
                         config.minion_config(self.lab, minion_id, master=master), mode=0o600)
        extra = json.loads(os.environ.get("PGHA_LAB_PILLAR") or "{}")
        files = config.pillar_files(os.path.join(self.lab, "hosts", "{id}"), os.path.join(self.lab, "reports"), extra,
                                    self.repo, topology, self.nodes_sls(), network)
        for name, text in files.items():
            config.write(os.path.join(self.lab, "pillar", name), text, mode=0o600)
        secrets = os.path.join(self.lab, "pillar", "pgha_secrets.yaml")
        old = os.path.join(self.lab, "pillar", "lab_secrets.sls")
        if os.path.exists(old) and not os.path.exists(secrets):
            os.replace(old, secrets)  # a lab made before secrets by role kept its passwords there
        values = config.secrets_file(secrets)
        # the master reads Patroni's REST API too: the CA under its root (it has no role, no certificate)
        hosts = dict(nodes, **{config.MASTER_ID: {"address": master, "roles": []}})
        pki.place(os.path.join(self.lab, "pki"), self.host_root, hosts, self.repo)
        config.write(os.path.join(self.lab, "topology"), topology + "\n")
        config.write(os.path.join(self.lab, "network"), network + "\n")
        config.write(os.path.join(self.lab, "pgpass"),
                     config.pgpass_line(self.haproxy_address(), "*", "postgres", values["superuser_password"]), mode=0o600)
        return values

    def haproxy_address(self) -> str:
        """Where clients connect: the (first) HAProxy node's address."""
        found = [node["address"] for node in self.nodes.values() if "haproxy" in node.get("roles", [])]
        return found[0] if found else "127.0.0.3"

    def move(self, previous: str, network: str) -> None:
        """
        A lab made on one network layout brought onto the other, its data kept: every process stopped;
        etcd's data removed (its members' peer addresses are part of it; the orchestration makes a new
        etcd and Patroni, finding no cluster there, puts its own back from PostgreSQL's data on a new
        timeline); the hosts' service definitions removed (the states write them again); PostgreSQL's
        data, the backups' repository and every other file kept.
        """
        say(f"  this lab was made on {previous}; moving it to {network}: its processes stopped, etcd rebuilt "
            "empty at the new addresses, PostgreSQL's data and the backups kept")
        self.down()
        for minion_id in self.minions:
            data = self.host_root(minion_id) + "/var/lib/etcd/default"
            if os.path.isdir(data):
                shutil.rmtree(data)
                say(f"  removed etcd's data on {minion_id} ({os.path.relpath(data, self.repo)})")
            # Some services reload a changed configuration without taking new addresses (Patroni its etcd hosts,
            # PgBouncer its listen_addr): each host's supervisord starts with no program, and the states add each
            # with its configuration at the new addresses
            programs = self.host_root(minion_id) + "/etc/pgha/supervisord.d"
            for name in sorted(os.listdir(programs)) if os.path.isdir(programs) else []:
                os.remove(os.path.join(programs, name))

    def wheels(self) -> None:
        """
        Patroni's wheels (the version the pillar asks for, with its dependencies) in ``.lab/wheels``, made
        here, where PyPI is reachable, and linked at lookup:patroni:pip:wheel_dir on every host: a host in
        its namespace reaches nothing beyond the lab.
        """
        requirement = config.model(self.lab, self.repo).settings["lookup"]["patroni"]["pip"]["requirement"]
        wheels = os.path.join(self.lab, "wheels")
        marker = os.path.join(wheels, ".requirement")
        if not (os.path.exists(marker) and pathlib.Path(marker).read_text(encoding="utf-8").strip() == requirement):
            say(f"  fetching {requirement}'s wheels for the hosts into .lab/wheels")
            os.makedirs(wheels, exist_ok=True)
            ret = subprocess.run([os.path.join(VENV_BIN, "pip"), "wheel", "--quiet", "--disable-pip-version-check",
                                  "--wheel-dir", wheels, requirement], capture_output=True, text=True, check=False)
            if ret.returncode != 0:
                raise SystemExit(f"lab: pip wheel {requirement} failed:\n{ret.stdout[-2000:]}{ret.stderr[-2000:]}")
            config.write(marker, requirement + "\n")
        for minion_id in self.nodes:
            link = self.host_root(minion_id) + config.WHEEL_DIR
            if not os.path.islink(link):
                os.makedirs(os.path.dirname(link), exist_ok=True)
                os.symlink(wheels, link)

    def start(self) -> None:
        if self.namespaced:
            for made in netns.up(self.nodes):
                say(f"  made {made}")
            self.wheels()
        master_pid = os.path.join(self.lab, "run", "salt-master.pid")
        if alive(read_pid(master_pid)):
            say("  salt-master already running")
        else:
            subprocess.run([os.path.join(VENV_BIN, "salt-master"), "-c", self.conf_dir, "-d"], check=True)
            say(f"  salt-master started (pid {self._wait_pid(master_pid)})")
        for minion_id in self.minions:
            pidfile = os.path.join(self.lab, "run", f"salt-minion-{minion_id}.pid")
            if alive(read_pid(pidfile)):
                continue
            minion = [os.path.join(VENV_BIN, "salt-minion"), "-c", self.minion_conf_dir(minion_id), "-d"]
            # a namespaced host's minion (and so its supervisord and every service) runs in the host's namespace;
            # a minion kept only to retire its node, with no address any more, in the machine's
            inside = netns.wrap if self.namespaced and minion_id in self.nodes else (lambda _, command: command)
            if os.environ.get("PGHA_LAB_REAPER", "1") == "0":  # the bench's comparison: the machine's init reaps
                subprocess.run(inside(minion_id, minion), check=True)
            else:
                # under the lab's reaper (lab/reaper.py): what the minion starts is reaped at once, as under systemd
                reaper = [sys.executable, "-m", "lab.reaper", self.reaper_pidfile(minion_id), "--", *minion]
                with open(os.devnull, "r+b") as null:
                    subprocess.Popen(inside(minion_id, reaper), cwd=self.repo, stdin=null, stdout=null, stderr=null,
                                     start_new_session=True)
            self._wait_pid(pidfile)
        self.wait_minions()

    def _wait_pid(self, pidfile: str, timeout: float = 30.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = read_pid(pidfile)
            if alive(pid):
                return pid
            time.sleep(0.2)
        raise SystemExit(f"lab: no live process behind {pidfile} after {timeout:.0f} s; see {self.lab}/logs")

    def wait_minions(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        answered: set = set()
        while time.monotonic() < deadline:
            ret = self.salt("salt", "*", "test.ping", "--out=json", "--static", "-t", "10", check=False)
            try:
                answered = {k for k, v in json.loads(ret.stdout or "{}").items() if v is True}
            except ValueError:
                answered = set()
            if answered >= set(self.minions):
                say(f"  {len(self.minions)} minions answer: {', '.join(self.minions)}")
                return
            time.sleep(2)
        raise SystemExit(f"lab: minions {sorted(set(self.minions) - answered)} did not answer within {timeout:.0f} s")

    # tear-down -------------------------------------------------------------
    def service_pids(self) -> list[tuple[str, int]]:
        """The services each host's supervisord runs (etcd, patroni, haproxy), by pid."""
        found = []
        for minion_id in self.minions:
            conf = os.path.join(self.host_root(minion_id), "etc", "pgha", "supervisord.conf")
            pidfile = os.path.join(self.host_root(minion_id), "run", "pgha", "supervisord.pid")
            if not os.path.exists(conf) or not alive(read_pid(pidfile)):
                continue
            ret = subprocess.run(["supervisorctl", "-c", conf, "status"], capture_output=True, text=True, check=False)
            for line in ret.stdout.splitlines():
                parts = line.split()
                if "pid" in parts:
                    found.append((f"{parts[0]} of {minion_id}", int(parts[parts.index("pid") + 1].rstrip(","))))
        return found

    def down(self) -> None:
        """
        Every process of the lab, by pid: the PostgreSQL hosts without etcd together, while etcd still
        answers (a leader's Patroni gives up its key on the way out) and the backup host still takes WAL (a
        leader's shutdown waits until its WAL is archived), then etcd's hosts one at a time (PostgreSQL's
        first), the other hosts together, the minions together, the master; last any service or postmaster
        its supervisord left behind.
        """
        services = self.service_pids()
        pids = {what: read_pid(pidfile) for what, pidfile in self.pidfiles()}

        def runs(minion: str, program: str) -> bool:
            return os.path.exists(os.path.join(self.host_root(minion), "etc", "pgha", "supervisord.d", f"{program}.conf"))

        def supervisord(minion: str) -> tuple[str, int | None]:
            return f"supervisord of {minion}", pids[f"supervisord of {minion}"]

        etcd_hosts = sorted((m for m in self.minions if runs(m, "etcd")), key=lambda m: not runs(m, "patroni"))
        postgres = [m for m in self.minions if runs(m, "patroni") and m not in etcd_hosts]
        stop_pids([supervisord(m) for m in postgres])
        for m in etcd_hosts:
            stop_pids([supervisord(m)])
        stop_pids([supervisord(m) for m in self.minions if m not in etcd_hosts and m not in postgres])
        stop_pids([(f"salt-minion {m}", pids[f"salt-minion {m}"]) for m in self.minions])
        stop_pids([("salt-master", pids["salt-master"])])
        stop_pids(services, grace=30)
        stop_pids([(what, pid) for what, pid in ((w, read_pid(f)) for w, f in self.leftovers())
                   if alive(pid) and _is_postgres(pid)], grace=30)
        # each minion's reaper leaves once nothing is left below it; one still there is stopped
        stop_pids([(f"reaper of {m}", read_pid(self.reaper_pidfile(m))) for m in self.minions
                   if alive(read_pid(self.reaper_pidfile(m)))], grace=10)
        running = [(what, read_pid(p)) for what, p in self.pidfiles() if alive(read_pid(p))]
        running += [(what, pid) for what, pid in services if alive(pid)]
        if running:
            raise SystemExit(f"lab: still running: {running}")
        say("lab stopped: no process of the lab is running")
        if self.namespaced:
            # what the services left running in their hosts' namespaces (an archiver PostgreSQL started, say)
            stop_pids([(f"{_command(pid)} in {ns}", pid) for ns in netns.namespaces()
                       for pid in netns.processes_inside(ns)], grace=10)
            inside = {ns: netns.processes_inside(ns) for ns in netns.namespaces()}
            inside = {ns: pids for ns, pids in inside.items() if pids}
            if inside:
                raise SystemExit(f"lab: processes still in the lab's namespaces, which are kept: {inside}")
            removed = netns.down()
            if removed:
                say(f"lab's network removed: {', '.join(removed)}")

    def running(self) -> bool:
        return alive(read_pid(os.path.join(self.lab, "run", "salt-master.pid")))
