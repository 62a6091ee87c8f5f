"""
The pgha lab: the seed's five hosts on one machine.

A salt-master on 127.0.0.1 and five salt-minions (postgres01, postgres02,
postgres03, etcd, haproxy), each minion with its own root under
``.lab/hosts/<id>`` where the formula puts that host's files, its own
supervisord (started by the formula, as its service manager) and its own
loopback address (pillar/pgha/lab.sls). Everything the lab starts leaves a
pid file under ``.lab``; ``down`` ends exactly those processes.

Usage: python lab/pghalab.py up|down|clean|status
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAB = os.path.join(REPO, ".lab")
VENV_BIN = os.path.join(REPO, ".venv", "bin")
MINIONS = ("etcd", "postgres01", "postgres02", "postgres03", "haproxy")
SECRET_NAMES = (
    "superuser_password",
    "replication_password",
    "admin_password",
    "restapi_password",
    "haproxy_stats_password",
    "etcd_root_password",
    "etcd_patroni_password",
)
MASTER_ID = "pgha-lab"
# The repository is a file root (for _modules, _states, _runners): keep the
# virtualenv, the lab's own files and git out of the master's file server.
FILE_IGNORE_REGEX = [r"/\.venv/", r"/\.lab/", r"/\.git/", r"/tests/", r"/bench/", r"__pycache__"]


def say(text: str = "") -> None:
    print(text, flush=True)


# ---------------------------------------------------------------------------
# configuration files
# ---------------------------------------------------------------------------


def master_config(lab: str, repo: str, ports: tuple[int, int] = (4505, 4506)) -> str:
    return "\n".join(
        [
            "# Written by lab/pghalab.py: the lab's salt-master.",
            f"id: {MASTER_ID}",
            "user: root",
            "interface: 127.0.0.1",
            f"publish_port: {ports[0]}",
            f"ret_port: {ports[1]}",
            f"root_dir: {lab}",
            f"pki_dir: {lab}/master/pki",
            f"cachedir: {lab}/master/cache",
            f"sock_dir: {lab}/master/sock",
            f"pidfile: {lab}/run/salt-master.pid",
            f"log_file: {lab}/logs/salt-master.log",
            f"key_logfile: {lab}/logs/salt-key.log",
            "log_level_logfile: info",
            "# The lab's minions are its own processes: accept their keys.",
            "auto_accept: True",
            "worker_threads: 4",
            "file_ignore_regex:",
            *[f"  - '{regex}'" for regex in FILE_IGNORE_REGEX],
            "file_roots:",
            "  base:",
            f"    - {repo}/salt",
            f"    - {repo}",
            "pillar_roots:",
            "  base:",
            f"    - {lab}/pillar",
            f"    - {repo}/pillar",
            "",
        ]
    )


def minion_config(lab: str, minion_id: str, ports: tuple[int, int] = (4505, 4506)) -> str:
    root = f"{lab}/minions/{minion_id}"
    return "\n".join(
        [
            f"# Written by lab/pghalab.py: the lab's minion {minion_id}.",
            f"id: {minion_id}",
            "user: root",
            "master: 127.0.0.1",
            f"publish_port: {ports[0]}",
            f"master_port: {ports[1]}",
            f"root_dir: {lab}",
            f"pki_dir: {root}/pki",
            f"cachedir: {root}/cache",
            f"sock_dir: {root}/sock",
            f"pidfile: {lab}/run/salt-minion-{minion_id}.pid",
            f"log_file: {lab}/logs/salt-minion-{minion_id}.log",
            "log_level_logfile: info",
            "",
        ]
    )


def pillar_files(lab: str, root_template: str, report_dir: str, extra: str = "") -> dict[str, str]:
    """The lab's local pillar: its top file, the roots and the generated secrets."""
    top = "# Written by lab/pghalab.py.\nbase:\n  '*':\n    - pgha.lab\n    - lab_local\n    - lab_secrets\n"
    local = "\n".join(
        [
            "# Written by lab/pghalab.py: where this clone keeps each lab host's files.",
            "pgha:",
            "  lookup:",
            f"    root: {root_template}",
            "  drill:",
            f"    report_dir: {report_dir}",
            extra,
        ]
    )
    return {"top.sls": top, "lab_local.sls": local}


def secrets_file(path: str) -> dict[str, str]:
    """Generate the lab's passwords once (mode 0600), adding any missing; return them."""
    values = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.strip().partition(": ")
                if key in SECRET_NAMES:
                    values[key] = value
    if set(values) != set(SECRET_NAMES):
        for name in SECRET_NAMES:
            values.setdefault(name, secrets.token_urlsafe(18))
        lines = ["# Written by lab/pghalab.py: the lab's generated passwords.", "pgha:", "  secrets:"]
        lines += [f"    {name}: {values[name]}" for name in SECRET_NAMES]
        fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.replace(path + ".new", path)
    return values


def patronictl_path(repo: str = REPO) -> str:
    """Where the formula installs patronictl on a host (defaults.yaml: lookup:patroni:venv_dir), under its root."""
    with open(os.path.join(repo, "salt", "pgha", "parameters", "defaults.yaml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["lookup"]["patroni"]["venv_dir"] + "/bin/patronictl"


def tls_paths(repo: str = REPO) -> dict[str, str]:
    """Where the formula looks for etcd's TLS files (defaults.yaml), on each host."""
    with open(os.path.join(repo, "salt", "pgha", "parameters", "defaults.yaml"), encoding="utf-8") as handle:
        tls = yaml.safe_load(handle)["etcd"]["tls"]
    return {key: tls[key] for key in ("ca_file", "cert_file", "key_file")}


def _openssl(*args: str) -> None:
    ret = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if ret.returncode != 0:
        raise SystemExit(f"lab: openssl {args[0]} failed: {ret.stderr.strip()}")


def pki(ca_dir: str, host_root, nodes: dict[str, dict], repo: str = REPO) -> None:
    """
    The lab's stand-in for a PKI: a CA (kept in ``ca_dir``, 0700) and, for each
    etcd node, a certificate for its address (server and client use, so peers
    can authenticate each other), placed where the formula expects them under
    each host's root; the CA goes to every host. Kept across runs.
    """
    os.makedirs(ca_dir, mode=0o700, exist_ok=True)
    os.chmod(ca_dir, 0o700)
    ca_key, ca_crt = os.path.join(ca_dir, "ca.key"), os.path.join(ca_dir, "ca.crt")
    if not (os.path.exists(ca_key) and os.path.exists(ca_crt)):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", ca_key, "-out", ca_crt, "-days", "3650", "-subj", "/CN=pgha lab etcd CA")
    paths = tls_paths(repo)
    with open(ca_crt, encoding="utf-8") as handle:
        ca_text = handle.read()
    for node_id, node in nodes.items():
        root = host_root(node_id)
        write(root + paths["ca_file"], ca_text)
        if "etcd" not in node.get("roles", []):
            continue
        key, crt = os.path.join(ca_dir, f"{node_id}.key"), os.path.join(ca_dir, f"{node_id}.crt")
        if not (os.path.exists(key) and os.path.exists(crt) and _cert_for(crt, node["address"])):
            ext = os.path.join(ca_dir, f"{node_id}.ext")
            write(ext, "\n".join([
                f"subjectAltName=IP:{node['address']},IP:127.0.0.1,DNS:localhost",
                "extendedKeyUsage=serverAuth,clientAuth",
                "keyUsage=digitalSignature,keyEncipherment",
                "basicConstraints=CA:FALSE",
                "",
            ]), mode=0o600)
            csr = os.path.join(ca_dir, f"{node_id}.csr")
            _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", key, "-out", csr, "-subj", f"/CN={node_id}")
            _openssl("x509", "-req", "-in", csr, "-CA", ca_crt, "-CAkey", ca_key, "-CAcreateserial",
                     "-out", crt, "-days", "3650", "-extfile", ext)
        with open(crt, encoding="utf-8") as handle:
            write(root + paths["cert_file"], handle.read())
        with open(key, encoding="utf-8") as handle:
            write(root + paths["key_file"], handle.read(), mode=0o600)


def _cert_for(crt: str, address: str) -> bool:
    ret = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=False)
    return f"IP Address:{address}" in ret.stdout


def write(path: str, text: str, mode: int = 0o644) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, mode)


def pgpass_line(host: str, port: int, user: str, password: str) -> str:
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    return f"{esc(host)}:{port}:*:{esc(user)}:{esc(password)}\n"


# ---------------------------------------------------------------------------
# processes, by pid file
# ---------------------------------------------------------------------------


def read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="utf-8") as handle:
            first = handle.readline().strip()
    except OSError:
        return None
    return int(first) if first.isdigit() else None


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


def stop_pid(pid: int | None, what: str, grace: float = 60.0) -> None:
    if not alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if alive(pid):
        say(f"  {what} (pid {pid}) ignored SIGTERM for {grace:.0f} s: SIGKILL")
        os.kill(pid, signal.SIGKILL)
        while alive(pid):
            time.sleep(0.1)


class Lab:
    def __init__(self, lab: str = LAB, repo: str = REPO):
        self.lab, self.repo = lab, repo
        self.conf_dir = os.path.join(lab, "etc", "salt")

    # paths -----------------------------------------------------------------
    def host_root(self, minion_id: str) -> str:
        return os.path.join(self.lab, "hosts", minion_id)

    def minion_conf_dir(self, minion_id: str) -> str:
        return os.path.join(self.lab, "minions", minion_id, "etc")

    def pidfiles(self) -> list[tuple[str, str]]:
        """Every pid file of the lab: supervisords first (their services), then Salt."""
        files = [
            (f"supervisord of {m}", os.path.join(self.host_root(m), "run", "pgha", "supervisord.pid")) for m in MINIONS
        ]
        files += [(f"salt-minion {m}", os.path.join(self.lab, "run", f"salt-minion-{m}.pid")) for m in MINIONS]
        files.append(("salt-master", os.path.join(self.lab, "run", "salt-master.pid")))
        return files

    def leftovers(self) -> list[tuple[str, str]]:
        """PostgreSQL postmasters of the lab's hosts (started by their Patroni)."""
        return [
            (f"postgres of {m}", os.path.join(self.host_root(m), "var", "lib", "patroni", "postmaster.pid"))
            for m in MINIONS
        ]

    def salt(self, tool: str, *args: str, check: bool = True, capture: bool = True, timeout: int | None = None):
        cmd = [os.path.join(VENV_BIN, tool), "-c", self.conf_dir, *args]
        return subprocess.run(cmd, check=check, capture_output=capture, text=True, timeout=timeout)

    # set-up ----------------------------------------------------------------
    def configure(self) -> dict[str, str]:
        for sub in ("run", "logs", "reports", "pillar", "hosts"):
            os.makedirs(os.path.join(self.lab, sub), exist_ok=True)
        os.chmod(self.lab, 0o755)
        write(os.path.join(self.conf_dir, "master"), master_config(self.lab, self.repo))
        for minion_id in MINIONS:
            write(os.path.join(self.minion_conf_dir(minion_id), "minion"), minion_config(self.lab, minion_id))
        files = pillar_files(self.lab, os.path.join(self.lab, "hosts", "{id}"), os.path.join(self.lab, "reports"))
        for name, text in files.items():
            write(os.path.join(self.lab, "pillar", name), text)
        os.chmod(os.path.join(self.lab, "pillar"), 0o700)
        values = secrets_file(os.path.join(self.lab, "pillar", "lab_secrets.sls"))
        with open(os.path.join(self.repo, "pillar", "pgha", "lab.sls"), encoding="utf-8") as handle:
            nodes = yaml.safe_load(handle)["pgha"]["nodes"]
        pki(os.path.join(self.lab, "pki"), self.host_root, nodes, self.repo)
        pgpass = os.path.join(self.lab, "pgpass")
        write(pgpass, pgpass_line("127.0.0.3", 5432, "postgres", values["superuser_password"]), mode=0o600)
        return values

    def start(self) -> None:
        master_pid = os.path.join(self.lab, "run", "salt-master.pid")
        if alive(read_pid(master_pid)):
            say("  salt-master already running")
        else:
            subprocess.run([os.path.join(VENV_BIN, "salt-master"), "-c", self.conf_dir, "-d"], check=True)
            say(f"  salt-master started (pid {self._wait_pid(master_pid)})")
        for minion_id in MINIONS:
            pidfile = os.path.join(self.lab, "run", f"salt-minion-{minion_id}.pid")
            if alive(read_pid(pidfile)):
                continue
            subprocess.run(
                [os.path.join(VENV_BIN, "salt-minion"), "-c", self.minion_conf_dir(minion_id), "-d"], check=True
            )
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
            if answered >= set(MINIONS):
                say(f"  five minions answer: {', '.join(MINIONS)}")
                return
            time.sleep(2)
        raise SystemExit(f"lab: minions {sorted(set(MINIONS) - answered)} did not answer within {timeout:.0f} s")

    # the orchestration -----------------------------------------------------
    def orchestrate(self) -> tuple[int, dict]:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        log_path = os.path.join(self.lab, "logs", f"orchestrate-{stamp}.json")
        say(f"running: salt-run -c .lab/etc/salt state.orchestrate pgha   (full output: {os.path.relpath(log_path, self.repo)})")
        started = time.monotonic()
        ret = self.salt("salt-run", "state.orchestrate", "pgha", "--out=json", check=False)
        elapsed = time.monotonic() - started
        write(log_path, ret.stdout, mode=0o600)
        if ret.stderr:
            write(log_path.replace(".json", ".stderr"), ret.stderr, mode=0o600)
        try:
            data = json.loads(ret.stdout)
        except ValueError:
            say(ret.stdout[-3000:])
            say(ret.stderr[-3000:])
            return ret.returncode or 1, {}
        states = {}
        payload = data.get("data", data)
        for value in payload.values():
            if isinstance(value, dict):
                states.update(value)
            elif isinstance(value, list):
                say("orchestration did not run: " + "; ".join(map(str, value)))
                return ret.returncode or 1, {}
        for key, state in sorted(states.items(), key=lambda kv: kv[1].get("__run_num__", 0)):
            name = key.split("_|-")[1]
            mark = {True: "ok  ", False: "FAIL", None: "skip"}.get(state.get("result"), "?   ")
            say(f"  {mark} {name:<36} {state.get('duration', 0) / 1000:7.1f} s")
            if name == "pgha-orch-hosts-ready":
                hosts = ((state.get("changes") or {}).get("ret") or {}).items()
                versions = [f"{m} {r['patroni_version']}" for m, r in sorted(hosts)
                            if isinstance(r, dict) and r.get("patroni_version")]
                say("       Patroni installed: " + (", ".join(versions) or "none yet"))
            if state.get("result") is False:
                say("       " + str(state.get("comment", "")).replace("\n", "\n       ")[:4000])
                for line in failed_details(state.get("changes") or {}):
                    say("       " + line[:2000])
        say(f"orchestration: exit {ret.returncode} in {elapsed:.1f} s")
        return ret.returncode, states

    # reports ---------------------------------------------------------------
    def show(self, states: dict | None = None) -> None:
        cfg = os.path.join(self.host_root("postgres01"), "etc", "patroni", "config.yml")
        say("\npatronictl list:")
        ctl = self.host_root("postgres01") + patronictl_path(self.repo)
        ret = subprocess.run([ctl, "-c", cfg, "list"], capture_output=True, text=True, check=False)
        say(ret.stdout.rstrip() or ret.stderr.rstrip())
        values = secrets_file(os.path.join(self.lab, "pillar", "lab_secrets.sls"))
        token = base64.b64encode(f"stats:{values['haproxy_stats_password']}".encode()).decode()
        req = urllib.request.Request("http://127.0.0.3:8080/;csv", headers={"Authorization": "Basic " + token})
        say("\nHAProxy backend servers (listen postgres, 127.0.0.3:5432):")
        try:
            with urllib.request.urlopen(req, timeout=3) as resp:
                for line in resp.read().decode().splitlines()[1:]:
                    cols = line.split(",")
                    if cols[0] == "postgres" and cols[1] not in ("FRONTEND", "BACKEND"):
                        say(f"  {cols[1]:<12} {cols[17]}")
        except OSError as exc:
            say(f"  stats page unreachable: {exc}")
        for key, state in (states or {}).items():
            if "pgha-orch-failover-drill" in key:
                drill = (state.get("changes") or {}).get("return") or {}
                say("\nfailover drill:")
                for field in (
                    "mode", "ok", "old_leader", "new_leader", "timeline_before", "timeline_after", "rto_s",
                    "write_gap_s", "acked", "lost", "rejoin_s", "replicas_streaming", "report", "picture",
                ):
                    say(f"  {field:<20} {drill.get(field)}")
                for problem in drill.get("problems", []):
                    say(f"  problem: {problem}")
        say("\nconnect through HAProxy: PGPASSFILE=.lab/pgpass psql -h 127.0.0.3 -U postgres postgres")

    # tear-down -------------------------------------------------------------
    def service_pids(self) -> list[tuple[str, int]]:
        """The services each host's supervisord runs (etcd, patroni, haproxy), by pid."""
        found = []
        for minion_id in MINIONS:
            conf = os.path.join(self.host_root(minion_id), "etc", "pgha", "supervisord.conf")
            if not os.path.exists(conf) or not alive(read_pid(conf.replace("etc/pgha/supervisord.conf", "run/pgha/supervisord.pid"))):
                continue
            ret = subprocess.run(["supervisorctl", "-c", conf, "status"], capture_output=True, text=True, check=False)
            for line in ret.stdout.splitlines():
                parts = line.split()
                if "pid" in parts:
                    pid = int(parts[parts.index("pid") + 1].rstrip(","))
                    found.append((f"{parts[0]} of {minion_id}", pid))
        return found

    def down(self) -> None:
        services = self.service_pids()
        for what, pidfile in self.pidfiles():
            pid = read_pid(pidfile)
            if alive(pid):
                say(f"  stopping {what} (pid {pid})")
                stop_pid(pid, what)
        for what, pid in services:
            if alive(pid):
                say(f"  stopping {what} (pid {pid})")
                stop_pid(pid, what, grace=30)
        for what, pidfile in self.leftovers():
            pid = read_pid(pidfile)
            if alive(pid) and _is_postgres(pid):
                say(f"  stopping {what} (pid {pid})")
                stop_pid(pid, what, grace=30)
        running = [(what, read_pid(p)) for what, p in self.pidfiles() if alive(read_pid(p))]
        running += [(what, pid) for what, pid in services if alive(pid)]
        if running:
            raise SystemExit(f"lab: still running: {running}")
        say("lab stopped: no process of the lab is running")

    def running(self) -> bool:
        return alive(read_pid(os.path.join(self.lab, "run", "salt-master.pid")))


def failed_details(changes: dict) -> list[str]:
    """The failed states inside a salt.state step, or a failed function's return."""
    lines = []
    ret = changes.get("ret")
    if isinstance(ret, dict):
        for minion, result in ret.items():
            if isinstance(result, dict):
                for key, state in result.items():
                    if isinstance(state, dict) and state.get("result") is False:
                        lines.append(f"{minion}: {key.split('_|-')[1]}: {state.get('comment')}")
            else:
                lines.append(f"{minion}: {result}")
    elif changes:
        lines.append(json.dumps(changes, default=str))
    return lines


def _is_postgres(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm", encoding="utf-8") as handle:
            return handle.read().strip() in ("postgres", "postmaster")
    except OSError:
        return False


def main(argv: list[str]) -> int:
    command = argv[1] if len(argv) > 1 else "up"
    lab = Lab()
    if command == "up":
        started = time.monotonic()
        say("pgha lab: five hosts on 127.0.0.x (see README, 'The lab')")
        lab.configure()
        lab.start()
        code, states = lab.orchestrate()
        lab.show(states)
        say(f"\nmake lab: {'done' if code == 0 else 'FAILED'} in {time.monotonic() - started:.1f} s")
        return code
    if command == "down":
        lab.down()
        return 0
    if command == "clean":
        lab.down()
        shutil.rmtree(LAB, ignore_errors=True)
        say("removed .lab/")
        return 0
    if command == "status":
        for what, pidfile in lab.pidfiles():
            pid = read_pid(pidfile)
            say(f"  {what:<28} {'running, pid ' + str(pid) if alive(pid) else 'stopped'}")
        return 0
    if command == "show":
        lab.show()
        return 0
    say(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
