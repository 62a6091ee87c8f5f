"""
The lab's configuration files: the salt-master's and each minion's, the
lab's own pillar (where each host's root is, the report directory, the
generated passwords) and the pgpass file of the lab's superuser.
"""

from __future__ import annotations

import os
import secrets

import yaml

from lab import REPO

MASTER_ID = "pgha-lab"
# The repository is a file root (for _modules, _states, _runners, _utils): keep
# the virtualenv, the lab's own files and git out of the master's file server.
FILE_IGNORE_REGEX = [r"/\.venv/", r"/\.lab/", r"/\.git/", r"/tests/", r"/bench/", r"__pycache__"]
# Timeouts that hold on a loaded 2-core machine (Salt's defaults are 5 s and 10 s).
CLI_TIMEOUT = 60
GATHER_JOB_TIMEOUT = 30


def secret_names(repo: str = REPO) -> tuple[str, ...]:
    """Every password the formula knows (pgha:secrets in defaults.yaml)."""
    with open(os.path.join(repo, "salt", "pgha", "parameters", "defaults.yaml"), encoding="utf-8") as handle:
        return tuple(yaml.safe_load(handle)["secrets"])


def master_config(lab: str, repo: str, ports: tuple[int, int] = (4505, 4506)) -> str:
    return "\n".join(
        [
            "# Written by `python -m lab`: the lab's salt-master.",
            f"id: {MASTER_ID}",
            "user: root",
            "interface: 127.0.0.1",
            f"publish_port: {ports[0]}",
            f"ret_port: {ports[1]}",
            f"root_dir: {lab}",
            f"pki_dir: {lab}/master/pki",
            f"cachedir: {lab}/master/cache",
            f"extension_modules: {lab}/master/extmods",
            f"sock_dir: {lab}/master/sock",
            f"pidfile: {lab}/run/salt-master.pid",
            f"log_file: {lab}/logs/salt-master.log",
            f"key_logfile: {lab}/logs/salt-key.log",
            "log_level_logfile: info",
            f"timeout: {CLI_TIMEOUT}",
            f"gather_job_timeout: {GATHER_JOB_TIMEOUT}",
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
            f"# Written by `python -m lab`: the lab's minion {minion_id}.",
            f"id: {minion_id}",
            "user: root",
            "master: 127.0.0.1",
            f"publish_port: {ports[0]}",
            f"master_port: {ports[1]}",
            f"root_dir: {lab}",
            f"pki_dir: {root}/pki",
            f"cachedir: {root}/cache",
            f"sock_dir: {root}/sock",
            "# Each minion its own synced modules (one shared directory would be written by five at once).",
            f"extension_modules: {root}/extmods",
            "# The orchestration syncs the formula's modules first (saltutil.sync_all); a highstate need",
            "# not sync all fifteen kinds of dynamic module again (about 3 s per minion).",
            "autoload_dynamic_modules: False",
            f"pidfile: {lab}/run/salt-minion-{minion_id}.pid",
            f"log_file: {lab}/logs/salt-minion-{minion_id}.log",
            "log_level_logfile: info",
            "",
        ]
    )


def pillar_top(nodes: dict, master_id: str, common: list[str]) -> str:
    """
    A pillar top file: ``common`` for every minion; to each node the secrets
    of its roles (pillar/pgha/secrets/<role>.sls, picked from the
    pgha_secrets.yaml beside this top), to the master all of them.
    """
    top: dict = {"*": list(common)}
    for role in ("postgresql", "etcd", "haproxy"):
        ids = sorted(node_id for node_id, node in nodes.items() if role in node.get("roles", []))
        if ids:
            top[",".join(ids)] = [{"match": "list"}, f"pgha.secrets.{role}"]
    top[master_id] = ["pgha.secrets.all"]
    return "# Written by `python -m lab`: secrets by role.\n" + yaml.safe_dump({"base": top}, default_flow_style=False)


def lab_nodes(repo: str = REPO) -> dict:
    """The lab's hosts (pillar/pgha/lab.sls): id -> address and roles."""
    with open(os.path.join(repo, "pillar", "pgha", "lab.sls"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["pgha"]["nodes"]


def merged(base: dict, update: dict) -> dict:
    """``update`` merged into a copy of ``base``, maps key by key."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def pillar_files(root_template: str, report_dir: str, extra: dict | None = None, repo: str = REPO) -> dict[str, str]:
    """
    The lab's local pillar: its top file, where this clone keeps each host's
    files, and ``extra`` pillar (``{"pgha": ...}``; the benchmark's way to
    try another setting, e.g. the distribution's Patroni).
    """
    top = pillar_top(lab_nodes(repo), MASTER_ID, ["pgha.lab", "lab_local"])
    local = merged({"pgha": {"lookup": {"root": root_template}, "drill": {"report_dir": report_dir}}}, extra or {})
    text = "# Written by `python -m lab`: where this clone keeps each lab host's files.\n"
    return {"top.sls": top, "lab_local.sls": text + yaml.safe_dump(local, default_flow_style=False)}


def secrets_file(path: str, names: tuple[str, ...] | None = None) -> dict[str, str]:
    """Generate the lab's passwords once (mode 0600), adding any missing; return them (pgha_secrets.yaml)."""
    names = names or secret_names()
    values = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            values = (yaml.safe_load(handle) or {}).get("pgha", {}).get("secrets", {})
    if set(values) != set(names):
        values = {name: values.get(name) or secrets.token_urlsafe(18) for name in names}
        text = yaml.safe_dump({"pgha": {"secrets": values}}, default_flow_style=False)
        write(path, "# Written by `python -m lab`: the lab's generated passwords.\n" + text, mode=0o600)
    return values


def write(path: str, text: str, mode: int = 0o644) -> None:
    """A file, written whole and with its mode before its content is there (a secret is never readable)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fd = os.open(path + ".new", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path + ".new", mode)
    os.replace(path + ".new", path)


def pgpass_line(host: str, port: int | str, user: str, password: str) -> str:
    def esc(value: str) -> str:
        return value.replace("\\", "\\\\").replace(":", "\\:")

    return f"{esc(host)}:{port}:*:{esc(user)}:{esc(password)}\n"
