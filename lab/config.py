"""
The lab's configuration files: the salt-master's and each minion's, the
lab's own pillar (where each host's root is, the report directory, the
generated passwords) and the pgpass file of the lab's superuser.
"""

from __future__ import annotations

import importlib.util
import os
import pathlib
import secrets

import yaml

from lab import REPO

MASTER_ID = "pgha-lab"
# The lab's topologies: the pillar files each stacks (under pillar/), later ones overriding. seed: the
# recipe's five hosts with one etcd member; ha: the same hosts, etcd also on postgres01 and postgres02.
TOPOLOGIES = {"seed": ("pgha.lab",), "ha": ("pgha.lab", "pgha.lab_ha")}
# The lab's network layouts (LAB_NETWORK=...): netns, each host its own network namespace on a bridge
# (lab/netns.py; the pillar file stacked last gives the hosts their 198.18.0.N); loopback, every host on
# 127.0.0.N in the machine's one network stack (the tests' layout: no partition can be drilled there).
NETWORKS = {"netns": ("pgha.lab_netns",), "loopback": ()}
# Where the lab puts Patroni's wheels for the hosts (lookup:patroni:pip:wheel_dir, under each host's root):
# a namespaced host reaches nothing beyond the lab, PyPI neither.
WHEEL_DIR = "/var/cache/pgha/wheels"
# The master's file server serves the formula's salt/ directory and nothing
# else (the custom modules through salt/_modules etc., links to the
# repository's); the master loads those modules from the repository itself
# (module_dirs). The documented production configuration, with the lab's
# paths: docs/how-to/production.md.
FILE_IGNORE_REGEX = [r"/__pycache__/"]
# Timeouts that hold on a loaded 2-core machine (Salt's defaults are 5 s and 10 s).
CLI_TIMEOUT = 60
GATHER_JOB_TIMEOUT = 30


def secret_names(repo: str = REPO) -> tuple[str, ...]:
    """Every password the formula knows (pgha:secrets in defaults.yaml)."""
    with open(os.path.join(repo, "salt", "pgha", "parameters", "defaults.yaml"), encoding="utf-8") as handle:
        return tuple(yaml.safe_load(handle)["secrets"])


def master_config(lab: str, repo: str, ports: tuple[int, int] = (4505, 4506), interface: str = "127.0.0.1") -> str:
    return "\n".join(
        [
            "# Written by `python -m lab`: the lab's salt-master.",
            f"id: {MASTER_ID}",
            "user: root",
            f"interface: {interface}",
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
            *formula_config(repo, [f"{lab}/pillar", f"{repo}/pillar"]),
            "",
        ]
    )


def formula_config(repo: str, pillar_roots: list[str]) -> list[str]:
    """
    The lines of a master's configuration that place the formula (the
    checkout at ``repo``) and the pillar: the file server serves ``salt/``
    only (states, templates and, through its links, the custom modules for
    the minions to sync); the master loads the runner, modules and utils
    from the checkout (module_dirs); pillar lives outside every file root.
    """
    return [
        "file_roots:",
        "  base:",
        f"    - {repo}/salt",
        "file_ignore_regex:",
        *[f"  - '{regex}'" for regex in FILE_IGNORE_REGEX],
        "module_dirs:",
        f"  - {repo}",
        "pillar_roots:",
        "  base:",
        *[f"    - {path}" for path in pillar_roots],
    ]


def minion_config(lab: str, minion_id: str, ports: tuple[int, int] = (4505, 4506), master: str = "127.0.0.1") -> str:
    root = f"{lab}/minions/{minion_id}"
    return "\n".join(
        [
            f"# Written by `python -m lab`: the lab's minion {minion_id}.",
            f"id: {minion_id}",
            "user: root",
            f"master: {master}",
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
    for role in ("postgresql", "etcd", "haproxy", "backup"):
        ids = sorted(node_id for node_id, node in nodes.items() if role in node.get("roles", []))
        if ids:
            top[",".join(ids)] = [{"match": "list"}, f"pgha.secrets.{role}"]
    top[master_id] = ["pgha.secrets.all"]
    return "# Written by `python -m lab`: secrets by role.\n" + yaml.safe_dump({"base": top}, default_flow_style=False)


# The lab's own pillar file for nodes beyond its topology's (docs/how-to/scaling.md): the
# operator's to edit, kept by `make lab`, stacked after the topology's files.
NODES_SLS = "nodes"
NODES_TEMPLATE = """# The lab's extra nodes (docs/how-to/scaling.md), yours to edit:
# stacked on the topology's pillar files; `make lab` starts a minion for each
# node and the orchestration adds it (or, once removed here, retires it).
# pgha:
#   nodes:
#     postgres04:
#       address: 198.18.0.40     # 127.0.0.40 on LAB_NETWORK=loopback
#       roles: [postgresql]
{}
"""


def read_sls(path: str) -> dict:
    """A plain YAML pillar file (no Jinja) as a map; {} when it is empty or missing."""
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        data = yaml.safe_load(handle) or {}
    if not isinstance(data, dict):
        raise SystemExit(f"lab: {path} must be a YAML map (pgha: nodes: ...)")
    return data


def stacked(topology: str, network: str = "loopback") -> tuple[str, ...]:
    """The pillar files (SLS names) of a topology on a network layout, later ones overriding."""
    return TOPOLOGIES[topology] + NETWORKS[network]


def lab_nodes(repo: str = REPO, topology: str = "seed", extra_sls: str | None = None,
              network: str = "loopback") -> dict:
    """
    The lab's hosts in ``topology`` on ``network`` (their pillar files,
    later ones overriding), plus those of ``extra_sls`` (the lab's nodes
    file) when given: id -> address and roles.
    """
    nodes: dict = {}
    files = [os.path.join(repo, "pillar", *sls.split(".")) + ".sls" for sls in stacked(topology, network)]
    for path in files + ([extra_sls] if extra_sls else []):
        cfg = read_sls(path).get("pgha") or {}
        nodes = merged(nodes, cfg.get("nodes") or {})
    return nodes


def model(lab: str, repo: str = REPO, minion_id: str = MASTER_ID):
    """
    The lab's cluster as its master sees it (``_utils/pgha_model.py``'s one ``build``): the topology's pillar
    files, the lab's nodes file, its local pillar and its generated secrets, over the formula's defaults.
    """
    spec = importlib.util.spec_from_file_location("pgha_model_of_the_lab", os.path.join(repo, "_utils", "pgha_model.py"))
    pgha_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(pgha_model)
    given: dict = {}
    files = [os.path.join(repo, "pillar", *sls.split(".")) + ".sls" for sls in stacked(topology(lab), network(lab))]
    files += [os.path.join(lab, "pillar", name) for name in (NODES_SLS + ".sls", "lab_local.sls", "pgha_secrets.yaml")]
    for path in files:
        given = merged(given, read_sls(path).get("pgha") or {})
    defaults = pgha_model.defaults_in([os.path.join(repo, "salt")])
    return pgha_model.build(defaults, given, minion_id, secrets_of="none")


def topology(lab: str, wanted: str | None = None) -> str:
    """
    The lab's topology: ``wanted`` (TOPOLOGY=...) if given, else the one the
    lab was made with (``.lab/topology``), else the seed's. Another topology
    on a running lab is a change of etcd's members, made by the
    orchestration like any other: seed -> ha, postgres01 and postgres02
    join etcd; ha -> seed, they leave it.
    """
    recorded = None
    path = os.path.join(lab, "topology")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            recorded = handle.read().strip() or None
    chosen = wanted or recorded or "seed"
    if chosen not in TOPOLOGIES:
        raise SystemExit(f"lab: TOPOLOGY must be one of {', '.join(TOPOLOGIES)} (got {chosen!r})")
    return chosen


def network(lab: str, wanted: str | None = None) -> str:
    """
    The lab's network layout: ``wanted`` (LAB_NETWORK=...) if given, else
    the one the lab was made with (``.lab/network``), else netns. A lab made
    before namespaces (hosts, no record) was a loopback one: ``make lab``
    moves it into namespaces (lab/processes.py, ``Lab.configure``).
    """
    path = os.path.join(lab, "network")
    recorded = pathlib.Path(path).read_text(encoding="utf-8").strip() if os.path.exists(path) else None
    chosen = wanted or recorded or "netns"
    if chosen not in NETWORKS:
        raise SystemExit(f"lab: LAB_NETWORK must be one of {', '.join(NETWORKS)} (got {chosen!r})")
    return chosen


def recorded_network(lab: str) -> str | None:
    """The layout the lab at ``lab`` was made with; loopback for one made before the record; None for no lab."""
    path = os.path.join(lab, "network")
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            return handle.read().strip() or None
    return "loopback" if os.path.isdir(os.path.join(lab, "hosts")) and os.listdir(os.path.join(lab, "hosts")) else None


def merged(base: dict, update: dict) -> dict:
    """``update`` merged into a copy of ``base``, maps key by key."""
    out = dict(base)
    for key, value in update.items():
        out[key] = merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def pillar_files(root_template: str, report_dir: str, extra: dict | None = None, repo: str = REPO,
                 topology: str = "seed", nodes_sls: str | None = None, network: str = "loopback") -> dict[str, str]:
    """
    The lab's local pillar: its top file (the topology's pillar files, then
    the lab's nodes file ``nodes_sls``), where this clone keeps each host's
    files, and ``extra`` pillar (``{"pgha": ...}``; the benchmark's way to
    try another setting, e.g. the distribution's Patroni).
    """
    top = pillar_top(lab_nodes(repo, topology, nodes_sls, network), MASTER_ID,
                     [*stacked(topology, network), NODES_SLS, "lab_local"])
    lookup: dict = {"root": root_template}
    if network == "netns":  # Patroni's wheels, put on each host by the lab (Lab.wheels)
        lookup["patroni"] = {"pip": {"wheel_dir": WHEEL_DIR}}
    local = merged({"pgha": {"lookup": lookup, "drill": {"report_dir": report_dir}}}, extra or {})
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
