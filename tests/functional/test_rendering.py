"""
Render the formula's real templates with `salt-call --local` and compare the
files with the seed (/work/shared/seed/patroni-etcd-haproxy-cluster.ru.md):
/etc/patroni/config.yml, haproxy.cfg and /etc/default/etcd, except where the
formula hardens them on purpose (no 0.0.0.0/0 in pg_hba, no /tmp pgpass, stats
page behind a password, `option httpchk OPTIONS /primary`, REST API
authentication, post_bootstrap script instead of bootstrap.users).

Every salt-call runs with its own configuration directory under pytest's tmp
directory: file_client local, no master, no daemon, no service started. The
pillar sets `pgha:lookup:root` so every managed file lands under tmp. The SLS
applied (pgha.<role>.config) manage files only and check that the packages are
already installed, so that they never install anything; a missing package
fails them with what to run (tests/functional/conftest.py).
"""

from __future__ import annotations

import functools
import grp
import json
import pathlib
import pwd
import re
import stat
import subprocess
import tempfile

import pytest
import yaml
from pgha_test_helpers import PILLAR_DIR, REPO, TEST_SECRETS

SALT_CALL = REPO / ".venv" / "bin" / "salt-call"
HAPROXY = "/usr/sbin/haproxy"
CALL_TIMEOUT = 120

# The lab's passwords: different from production's, still unique strings.
LAB_SECRETS = {key: value.replace("-pw-", "-lab-") for key, value in TEST_SECRETS.items()}

SEED_SERVERS = {"postgres01": "10.131.0.15", "postgres02": "10.131.0.32", "postgres03": "10.131.0.6"}
LAB_SERVERS = {"postgres01": "127.0.0.15", "postgres02": "127.0.0.32", "postgres03": "127.0.0.6"}


# ---------------------------------------------------------------------------
# a masterless salt-call environment under tmp
# ---------------------------------------------------------------------------


@functools.cache
def real_ca() -> str:
    """A self-signed certificate (PEM), made once with openssl, standing in for an operator's CA."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-nodes", "-keyout", f"{tmp}/ca.key", "-out", f"{tmp}/ca.crt", "-days", "30",
                        "-subj", "/CN=pgha test CA"], check=True, capture_output=True)
        return pathlib.Path(f"{tmp}/ca.crt").read_text()


class SaltEnv:
    """A salt-call --local configuration with its own pillar, cache and root."""

    def __init__(self, base: pathlib.Path, pillar_sls: list[str], local_pillar: dict, shared_root: pathlib.Path):
        # Salt prefixes root_dir to extension_modules unless it is under root_dir:
        # every environment has the same root_dir (shared_root), so that one
        # saltutil.sync_all serves them all, and its own cache, sockets and log.
        self.base = base
        self.conf_dir = base / "conf"
        self.pillar_dir = base / "pillar"
        self.salt_root = shared_root / base.name
        self.hosts = base / "hosts"
        self.calls: list[subprocess.CompletedProcess] = []
        for directory in (self.conf_dir, self.pillar_dir, self.salt_root):
            directory.mkdir(parents=True)
        local_pillar = {"pgha": dict(local_pillar.get("pgha", {}))}
        local_pillar["pgha"].setdefault("lookup", {})["root"] = f"{self.hosts}/{{id}}"
        # JSON is YAML: the pillar file needs no escaping.
        (self.pillar_dir / "pgha_unit_test_local.sls").write_text(json.dumps(local_pillar, indent=2))
        (self.pillar_dir / "top.sls").write_text(
            yaml.safe_dump({"base": {"*": [*pillar_sls, "pgha_unit_test_local"]}}, default_flow_style=False)
        )
        config = {
            "id": "postgres01",
            "file_client": "local",
            "root_dir": str(shared_root),
            "cachedir": str(self.salt_root / "cache"),
            "extension_modules": str(shared_root / "extmods"),
            "pki_dir": str(self.salt_root / "pki"),
            "sock_dir": str(self.salt_root / "sock"),
            "log_file": str(self.salt_root / "log" / "minion"),
            "log_level_logfile": "info",
            "pidfile": str(self.salt_root / "run" / "minion.pid"),
            "file_roots": {"base": [str(REPO / "salt")]},  # the documented layout: salt/ and its links
            "pillar_roots": {"base": [str(self.pillar_dir), str(PILLAR_DIR)]},
            # the fileserver need not walk the venv, the lab's files or git
            "file_ignore_regex": [r"/\.venv(/|$)", r"/\.lab(/|$)", r"/\.git(/|$)", r"/tests(/|$)"],
            "state_output": "full",
        }
        (self.conf_dir / "minion").write_text(yaml.safe_dump(config, default_flow_style=False))

    def call(self, *args: str, minion_id: str = "postgres01") -> subprocess.CompletedProcess:
        command = [
            str(SALT_CALL),
            "--local",
            "-c",
            str(self.conf_dir),
            "--id",
            minion_id,
            "--out=json",
            "--retcode-passthrough",
            "--log-level=warning",
            *args,
        ]
        proc = subprocess.run(
            command, capture_output=True, text=True, timeout=CALL_TIMEOUT, check=False, cwd=str(self.base)
        )
        self.calls.append(proc)
        return proc

    def apply(self, sls: str, minion_id: str) -> dict:
        """state.sls that must succeed: the state results by id."""
        proc = self.call("state.sls", sls, minion_id=minion_id)
        assert proc.returncode == 0, f"state.sls {sls} on {minion_id} failed:\n{proc.stdout}\n{proc.stderr}"
        results = json.loads(proc.stdout)["local"]
        assert isinstance(results, dict), results
        failed = {key: value["comment"] for key, value in results.items() if value["result"] is not True}
        assert not failed, failed
        return results

    def place_pki(self, nodes: dict[str, list[str]]) -> None:
        """What an operator's PKI puts on the hosts (pgha:etcd:tls): files the states only check."""
        for minion_id, roles in nodes.items():
            pki = self.path(minion_id, "/etc/pgha/pki")
            pki.mkdir(parents=True, exist_ok=True)
            for section in ("etcd", "postgresql"):
                # a real certificate: `haproxy -c` loads the CA its checks verify the REST API with
                (pki / f"{section}-ca.crt").write_text(real_ca())
                if section in roles:
                    (pki / f"{section}.crt").write_text("-----BEGIN CERTIFICATE-----\nnode\n-----END CERTIFICATE-----\n")
                    (pki / f"{section}.key").write_text("-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n")
                    (pki / f"{section}.key").chmod(0o644)
            # the exporters' https (monitor:tls, on in the lab and the production example): every host
            (pki / "monitor-ca.crt").write_text(real_ca())
            (pki / "monitor.crt").write_text("-----BEGIN CERTIFICATE-----\nnode\n-----END CERTIFICATE-----\n")
            (pki / "monitor.key").write_text("-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n")
            if {"postgresql", "backup"} & set(roles):  # pgBackRest's, on the backup node and the PostgreSQL nodes
                (pki / "pgbackrest-ca.crt").write_text(real_ca())
                (pki / "pgbackrest.crt").write_text("-----BEGIN CERTIFICATE-----\nnode\n-----END CERTIFICATE-----\n")
                (pki / "pgbackrest.key").write_text("-----BEGIN PRIVATE KEY-----\nkey\n-----END PRIVATE KEY-----\n")

    def root(self, minion_id: str) -> pathlib.Path:
        return self.hosts / minion_id

    def path(self, minion_id: str, absolute: str) -> pathlib.Path:
        return self.root(minion_id) / absolute.lstrip("/")

    def outputs(self) -> str:
        """stdout and stderr of every call, and the minion's log file."""
        texts = [proc.stdout + "\n" + proc.stderr for proc in self.calls]
        log = self.salt_root / "log" / "minion"
        if log.exists():
            texts.append(log.read_text(errors="replace"))
        return "\n".join(texts)


@pytest.fixture(scope="module")
def salt_root(tmp_path_factory) -> pathlib.Path:
    """Salt's root_dir, with the custom modules synced once (saltutil.sync_all) for every environment."""
    root = tmp_path_factory.mktemp("pgha-salt-root")
    env = SaltEnv(tmp_path_factory.mktemp("pgha-sync"), ["pgha.production"], {"pgha": {"secrets": TEST_SECRETS}}, root)
    proc = env.call("saltutil.sync_all")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    synced = json.loads(proc.stdout)["local"]
    assert "modules.pgha_config" in synced["modules"], synced
    assert "states.pgha_service" in synced["states"], synced
    assert (root / "extmods" / "modules" / "pgha_config.py").is_file()
    return root


PKI_NODES = {"postgres01": ["postgresql"], "etcd": ["etcd"], "haproxy": ["haproxy"], "backup": ["backup"]}


def _render_all(env: SaltEnv) -> dict:
    env.place_pki(PKI_NODES)
    return {
        "patroni": env.apply("pgha.patroni.config", "postgres01"),
        "haproxy": env.apply("pgha.haproxy.config", "haproxy"),
        "etcd": env.apply("pgha.etcd.config", "etcd"),
        "pgbackrest": env.apply("pgha.pgbackrest.config", "backup"),
    }


@pytest.fixture(scope="module")
def production(tmp_path_factory, salt_root) -> SaltEnv:
    env = SaltEnv(tmp_path_factory.mktemp("pgha-production"), ["pgha.production"], {"pgha": {"secrets": TEST_SECRETS}}, salt_root)
    env.results = _render_all(env)
    return env


@pytest.fixture(scope="module")
def lab(tmp_path_factory, salt_root) -> SaltEnv:
    env = SaltEnv(tmp_path_factory.mktemp("pgha-lab"), ["pgha.lab"], {"pgha": {"secrets": LAB_SECRETS}}, salt_root)
    env.results = _render_all(env)
    # the lab turns the pooler on (pgha:pgbouncer:enabled)
    env.results["pgbouncer"] = env.apply("pgha.pgbouncer.config", "haproxy")
    return env


@pytest.fixture(scope="module", params=["lab", "production"])
def three_etcd(request, tmp_path_factory, salt_root) -> SaltEnv:
    """The three-member etcd topology: pgha/<lab|production>.sls with its _ha overlay (`make lab TOPOLOGY=ha`)."""
    name = request.param
    secrets = LAB_SECRETS if name == "lab" else TEST_SECRETS
    env = SaltEnv(tmp_path_factory.mktemp(f"pgha-{name}-ha"), [f"pgha.{name}", f"pgha.{name}_ha"],
                  {"pgha": {"secrets": secrets}}, salt_root)
    env.place_pki({"postgres01": ["postgresql", "etcd"], "postgres02": ["postgresql", "etcd"], "etcd": ["etcd"]})
    env.results = {f"etcd@{node}": env.apply("pgha.etcd.config", node) for node in ("etcd", "postgres01")}
    env.results["patroni"] = env.apply("pgha.patroni.config", "postgres02")
    env.addresses = (LAB_SERVERS if name == "lab" else SEED_SERVERS) | {"etcd": "127.0.0.5" if name == "lab" else "10.131.0.5"}
    return env


@pytest.fixture(scope="module")
def quorum(tmp_path_factory, salt_root) -> SaltEnv:
    """The production pillar with quorum commit (`patroni:synchronous_mode: quorum`), Patroni's configuration."""
    env = SaltEnv(tmp_path_factory.mktemp("pgha-quorum"), ["pgha.production"],
                  {"pgha": {"secrets": TEST_SECRETS, "patroni": {"synchronous_mode": "quorum"}}}, salt_root)
    env.place_pki(PKI_NODES)
    env.results = {"patroni": env.apply("pgha.patroni.config", "postgres01")}
    return env


@pytest.fixture(scope="module")
def invalid(tmp_path_factory, salt_root) -> tuple[SaltEnv, subprocess.CompletedProcess]:
    env = SaltEnv(
        tmp_path_factory.mktemp("pgha-invalid"),
        ["pgha.production"],
        {"pgha": {"secrets": TEST_SECRETS, "patroni": {"ttl": 10}}},
        salt_root,
    )
    return env, env.call("state.sls", "pgha.patroni.config", minion_id="postgres01")


@pytest.fixture(scope="module")
def tls_missing(tmp_path_factory, salt_root) -> tuple[SaltEnv, subprocess.CompletedProcess]:
    """etcd TLS on (production pillar) and the etcd host's key not there."""
    env = SaltEnv(tmp_path_factory.mktemp("pgha-tls-missing"), ["pgha.production"], {"pgha": {"secrets": TEST_SECRETS}}, salt_root)
    env.place_pki(PKI_NODES)
    env.path("etcd", "/etc/pgha/pki/etcd.key").unlink()
    before = sorted(str(path) for path in env.hosts.rglob("*"))
    env.before = before
    return env, env.call("state.sls", "pgha.etcd", minion_id="etcd")


# ---------------------------------------------------------------------------
# parsing the rendered files
# ---------------------------------------------------------------------------


def patroni_config(env: SaltEnv, minion_id: str = "postgres01") -> dict:
    return yaml.safe_load(env.path(minion_id, "/etc/patroni/config.yml").read_text())


def ca(env: SaltEnv) -> str:
    """The PostgreSQL CA on the HAProxy node: its checks verify Patroni's REST API with it."""
    return str(env.path("haproxy", "/etc/pgha/pki/postgresql-ca.crt"))


def haproxy_lines(env: SaltEnv) -> list[str]:
    text = env.path("haproxy", "/etc/haproxy/haproxy.cfg").read_text()
    return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def haproxy_sections(env: SaltEnv) -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = None
    text = env.path("haproxy", "/etc/haproxy/haproxy.cfg").read_text()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not raw[0].isspace():
            current = line
            sections[current] = []
        else:
            assert current is not None, raw
            sections[current].append(line)
    return sections


def etcd_env(env: SaltEnv, minion_id: str = "etcd", files=("/etc/default/etcd", "/etc/default/etcd-initial")) -> dict[str, str]:
    """etcd's settings as its service reads them: the env file, then the initial one (when there)."""
    values = {}
    for name in files:
        path = env.path(minion_id, name)
        for line in path.read_text().splitlines() if path.exists() else []:
            if not line.strip() or line.startswith("#"):
                continue
            match = re.fullmatch(r'([A-Z_]+)="(.*)"', line)
            assert match, f"not KEY=\"value\": {line!r}"
            values[match[1]] = match[2]
    return values


def mode_owner(path: pathlib.Path) -> tuple[str, str, str]:
    info = path.stat()
    return oct(stat.S_IMODE(info.st_mode)), pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name


def shown(env: SaltEnv, sls: str, minion_id: str = "postgres01") -> dict[str, dict]:
    """state.show_sls (rendered, nothing run): id -> {"state": "file.managed", <argument>: value, ...}."""
    proc = env.call("state.show_sls", sls, minion_id=minion_id)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    states = {}
    for state_id, body in json.loads(proc.stdout)["local"].items():
        [(module, args)] = [(key, value) for key, value in body.items() if not key.startswith("__")]
        entry = {"state": module + "." + next(arg for arg in args if isinstance(arg, str))}
        for arg in args:
            if isinstance(arg, dict):
                entry.update(arg)
        states[state_id] = entry
    return states


# ---------------------------------------------------------------------------
# production: Patroni
# ---------------------------------------------------------------------------


def test_production_states_change_only_files(production):
    for role, results in production.results.items():
        for key, value in results.items():
            if key.startswith("pkg_|-"):
                # nothing installed, nothing refreshed: the packages were there
                assert value["changes"] == {}, (role, key, value)
            elif key.startswith("test_|-"):
                assert value["changes"] == {}, (role, key, value)
            elif key.startswith("user_|-"):
                # the backup node's repository owner, a system user (made once on this machine)
                assert role == "pgbackrest" and key.split("_|-")[2] == "pgbackrest", (role, key)
            else:
                assert key.startswith("file_|-"), (role, key)
                name = key.split("_|-")[2]
                assert name.startswith(str(production.hosts) + "/"), f"{role}: {name} outside the tmp root"


def test_patroni_identity(production):
    config = patroni_config(production)
    assert config["scope"] == "postgres"
    assert config["namespace"] == "/db/"
    assert config["name"] == "postgres01"


def test_patroni_restapi(production):
    restapi = patroni_config(production)["restapi"]
    assert restapi["listen"] == "10.131.0.15:8008"
    assert restapi["connect_address"] == "10.131.0.15:8008"
    # hardening: the REST API's unsafe endpoints need a password
    assert restapi["authentication"] == {"username": "patroni", "password": TEST_SECRETS["restapi_password"]}
    # https with the node's PostgreSQL certificate (patroni:restapi_tls); patronictl and the members verify it
    pki = production.path("postgres01", "/etc/pgha/pki")
    assert (restapi["certfile"], restapi["keyfile"]) == (str(pki / "postgresql.crt"), str(pki / "postgresql.key"))
    assert patroni_config(production)["ctl"] == {"cacert": str(pki / "postgresql-ca.crt")}


def test_patroni_etcd3(production):
    config = patroni_config(production)
    assert config["etcd3"]["hosts"] == ["10.131.0.5:2379"]
    assert "etcd" not in config  # the v3 API, as the seed
    # hardening: over TLS, verified against the CA, logged in as its own user
    assert config["etcd3"]["protocol"] == "https"
    assert config["etcd3"]["cacert"] == str(production.path("postgres01", "/etc/pgha/pki/etcd-ca.crt"))
    assert config["etcd3"]["username"] == "patroni"
    assert config["etcd3"]["password"] == TEST_SECRETS["etcd_patroni_password"]


def test_patroni_dcs_timings(production):
    dcs = patroni_config(production)["bootstrap"]["dcs"]
    assert dcs["ttl"] == 30
    assert dcs["loop_wait"] == 10
    assert dcs["retry_timeout"] == 10
    assert dcs["maximum_lag_on_failover"] == 1048576
    assert dcs["postgresql"]["use_pg_rewind"] is True
    assert dcs["synchronous_mode"] is False
    assert dcs["synchronous_mode_strict"] is False
    assert dcs["synchronous_node_count"] == 1
    # the leader stays primary while etcd is unreachable if every member answers
    assert dcs["failsafe_mode"] is True


def test_quorum_commit_reaches_patroni(quorum):
    dcs = patroni_config(quorum)["bootstrap"]["dcs"]
    assert (dcs["synchronous_mode"], dcs["synchronous_node_count"]) == ("quorum", 1)


def test_patroni_watchdog_section(production):
    assert patroni_config(production)["watchdog"] == {"mode": "automatic", "device": "/dev/watchdog", "safety_margin": 5}


def test_patroni_initdb(production):
    initdb = patroni_config(production)["bootstrap"]["initdb"]
    assert initdb == [{"encoding": "UTF8"}, "data-checksums", {"auth": "scram-sha-256"}]


def test_patroni_pg_hba(production):
    config = patroni_config(production)
    # in the local configuration, not the DCS: a change of pillar reaches pg_hba.conf on reload
    assert "pg_hba" not in config["bootstrap"]["dcs"]["postgresql"]
    hba = config["postgresql"]["pg_hba"]
    # TLS required (pgha:postgresql:tls): every TCP entry is hostssl
    for address in SEED_SERVERS.values():
        assert f"hostssl replication replicator {address}/32 scram-sha-256" in hba
    # the seed's `host all all 0.0.0.0/0` is gone; the applications' network instead
    assert not any("0.0.0.0/0" in line or "::/0" in line for line in hba), hba
    assert "hostssl all all 10.131.0.0/24 scram-sha-256" in hba
    assert "hostssl all all 10.131.0.3/32 scram-sha-256" in hba  # HAProxy's sessions
    assert [line.split()[0] for line in hba] == ["local"] + ["hostssl"] * (len(hba) - 1)
    for line in hba:
        assert line.split()[-1] in ("scram-sha-256",), line
        assert "trust" not in line.split() and "password" not in line.split(), line


def test_patroni_postgresql_tls(production):
    config = patroni_config(production)
    pki = production.path("postgres01", "/etc/pgha/pki")
    parameters = config["postgresql"]["parameters"]
    assert parameters["ssl"] == "on"
    assert (parameters["ssl_cert_file"], parameters["ssl_key_file"], parameters["ssl_ca_file"]) == (
        str(pki / "postgresql.crt"), str(pki / "postgresql.key"), str(pki / "postgresql-ca.crt"))
    # replicas check the primary's certificate and address
    replication = config["postgresql"]["authentication"]["replication"]
    assert (replication["sslmode"], replication["sslrootcert"]) == ("verify-full", str(pki / "postgresql-ca.crt"))
    # PostgreSQL refuses a key others can read: the states make it postgres's, 0600
    assert mode_owner(pki / "postgresql.key") == ("0o600", "postgres", "postgres")


def test_postgresql_tls_missing_fails_before_any_change(tmp_path_factory, salt_root):
    env = SaltEnv(tmp_path_factory.mktemp("pgha-pg-tls-missing"), ["pgha.production"], {"pgha": {"secrets": TEST_SECRETS}},
                  salt_root)
    env.place_pki(PKI_NODES)
    env.path("postgres01", "/etc/pgha/pki/postgresql.key").unlink()
    before = sorted(str(path) for path in env.hosts.rglob("*"))
    proc = env.call("state.sls", "pgha.patroni.config", minion_id="postgres01")
    assert proc.returncode != 0
    assert "pgha:postgresql:tls:key_file" in proc.stdout and "is not a file on postgres01" in proc.stdout
    assert sorted(str(path) for path in env.hosts.rglob("*")) == before


def test_patroni_post_bootstrap_instead_of_users(production):
    bootstrap = patroni_config(production)["bootstrap"]
    assert "users" not in bootstrap
    assert "users" not in bootstrap["dcs"]["postgresql"]
    script = production.path("postgres01", "/etc/patroni/post_bootstrap.sh")
    assert bootstrap["post_bootstrap"] == str(script)
    text = script.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert 'CREATE ROLE "admin" WITH LOGIN CREATEROLE CREATEDB' in text
    assert f"PASSWORD '{TEST_SECRETS['admin_password']}'" in text
    assert "password: admin" not in text
    assert mode_owner(script) == ("0o700", "postgres", "postgres")


def test_patroni_postgresql_section(production):
    postgresql = patroni_config(production)["postgresql"]
    assert postgresql["listen"] == "10.131.0.15:5432"
    assert postgresql["connect_address"] == "10.131.0.15:5432"
    assert postgresql["data_dir"] == str(production.path("postgres01", "/var/lib/patroni"))
    assert postgresql["bin_dir"] == "/usr/lib/postgresql/15/bin"
    assert postgresql["parameters"]["password_encryption"] == "scram-sha-256"
    assert postgresql["parameters"]["unix_socket_directories"] == str(production.path("postgres01", "/var/run/postgresql"))
    assert postgresql["authentication"]["superuser"] == {"username": "postgres",
                                                          "password": TEST_SECRETS["superuser_password"]}
    assert postgresql["authentication"]["replication"]["password"] == TEST_SECRETS["replication_password"]
    params = patroni_config(production)["bootstrap"]["dcs"]["postgresql"]["parameters"]
    assert params["password_encryption"] == "scram-sha-256"


def test_patroni_pgpass_not_in_tmp(production):
    pgpass = patroni_config(production)["postgresql"]["pgpass"]
    root = str(production.root("postgres01"))
    # the test's root is itself under /tmp: judge the path the host would get
    assert pgpass.startswith(root + "/"), pgpass
    on_host = pgpass[len(root) :]
    assert on_host == "/var/lib/postgresql/.pgpass.patroni"
    assert not on_host.startswith("/tmp/")
    # its directory exists, owned by postgres
    assert mode_owner(pathlib.Path(pgpass).parent)[1] == "postgres"


def test_patroni_tags(production):
    assert patroni_config(production)["tags"] == {"noloadbalance": False, "clonefrom": False, "nosync": False, "nostream": False}


def test_patroni_config_file_mode(production):
    path = production.path("postgres01", "/etc/patroni/config.yml")
    assert mode_owner(path) == ("0o600", "postgres", "postgres")


def test_patroni_data_dir(production):
    assert mode_owner(production.path("postgres01", "/var/lib/patroni")) == ("0o700", "postgres", "postgres")


# ---------------------------------------------------------------------------
# production: Patroni's installation, systemd unit and watchdog (rendered, not run)
# ---------------------------------------------------------------------------


def test_patroni_install_from_pypi(production):
    states = shown(production, "pgha.patroni.install")
    venv = str(production.path("postgres01", "/opt/pgha/patroni"))
    assert states["pgha-patroni-venv-package-installed"]["pkgs"] == ["python3-venv"]
    directory = states["pgha-patroni-venv-dir-managed"]
    assert (directory["name"], directory["user"], directory["group"], directory["mode"]) == (venv, "root", "root", "0755")
    pip = states["pgha-patroni-pip-installed"]
    assert pip["state"] == "patroni.installed"
    # the system Python: the postgres user can run what it makes
    assert (pip["name"], pip["python"], pip["version"]) == (venv, "/usr/bin/python3", "4.1.5")
    assert pip["requirement"] == "patroni[etcd3,psycopg3]==4.1.5"
    assert pip["pip_options"] == ["--disable-pip-version-check", "--no-input", "--quiet"]
    assert "index_url" not in pip
    assert "pgha-patroni-package-installed" not in states
    # a new Patroni restarts nothing: it says so, when it was installed
    noted = states["pgha-patroni-restart-pending-noted"]
    assert noted["onchanges"] == [{"patroni": "pgha-patroni-pip-installed"}]
    assert "salt-run pgha.restart what=patroni" in noted["text"]


def test_patroni_install_offline_options(production):
    env = SaltEnv(production.base / "offline", ["pgha.production"], {"pgha": {
        "secrets": TEST_SECRETS,
        "patroni": {"version": "4.1.4"},
        "lookup": {"patroni": {"pip": {"wheel_dir": "/srv/wheels"}}},
    }}, production.salt_root.parent)
    env.place_pki(PKI_NODES)
    pip = shown(env, "pgha.patroni.install")["pgha-patroni-pip-installed"]
    venv = str(env.path("postgres01", "/opt/pgha/patroni"))
    wheels = str(env.path("postgres01", "/srv/wheels"))
    assert pip["name"] == venv
    assert pip["pip_options"] == ["--disable-pip-version-check", "--no-input", "--quiet", "--no-index",
                                  "--find-links", wheels]
    assert (pip["requirement"], pip["version"]) == ("patroni[etcd3,psycopg3]==4.1.4", "4.1.4")


def test_patroni_install_index_url_not_in_the_command(production):
    url = "https://mirror:Idx-pw-0c1d2e3f@pypi.example.com/simple"
    env = SaltEnv(production.base / "index", ["pgha.production"], {"pgha": {
        "secrets": TEST_SECRETS, "lookup": {"patroni": {"pip": {"index_url": url}}},
    }}, production.salt_root.parent)
    env.place_pki(PKI_NODES)
    pip = shown(env, "pgha.patroni.install")["pgha-patroni-pip-installed"]
    assert url not in repr(pip["pip_options"]) and url not in pip["requirement"]
    assert pip["index_url"] == url  # given to pip through its environment, never on its command line


def test_patroni_install_package(production):
    env = SaltEnv(production.base / "package", ["pgha.production"], {"pgha": {
        "secrets": TEST_SECRETS, "lookup": {"patroni": {"install": "package"}},
    }}, production.salt_root.parent)
    env.place_pki(PKI_NODES)
    states = shown(env, "pgha.patroni.service")
    assert states["pgha-patroni-package-installed"]["pkgs"] == ["patroni", "python3-etcd3", "python3-psycopg2"]
    assert states["pgha-patroni-restart-pending-noted"]["onchanges"] == [{"pkg": "pgha-patroni-package-installed"}]
    assert not any(state_id.startswith("pgha-patroni-venv") for state_id in states)
    # the package's own unit
    assert "pgha-patroni-unit-file-managed" not in states
    assert states["pgha-patroni-service-running"]["state"] == "service.running"


def test_patroni_systemd_unit(production):
    states = shown(production, "pgha.patroni.service")
    unit = states["pgha-patroni-unit-file-managed"]
    assert unit["name"] == str(production.path("postgres01", "/etc/systemd/system/patroni.service"))
    assert (unit["user"], unit["group"], unit["mode"]) == ("root", "root", "0644")
    lines = [line for line in unit["contents"].splitlines() if line and not line.startswith("#")]
    venv = str(production.path("postgres01", "/opt/pgha/patroni"))
    config = str(production.path("postgres01", "/etc/patroni/config.yml"))
    for line in (
        "[Service]",
        "User=postgres",
        "Group=postgres",
        f"ExecStart={venv}/bin/patroni {config}",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "KillMode=process",
        "Restart=on-failure",
        "WantedBy=multi-user.target",
    ):
        assert line in lines, (line, lines)
    reload = states["pgha-patroni-unit-daemon-reloaded"]
    assert reload["name"] == "systemctl daemon-reload"
    assert reload["onchanges"] == [{"file": "pgha-patroni-unit-file-managed"}]
    running = states["pgha-patroni-service-running"]
    assert running["state"] == "service.running"
    assert running["reload"] is True
    # a new binary or unit never restarts Patroni by itself: required, not watched
    assert {"cmd": "pgha-patroni-unit-daemon-reloaded"} in running["require"]
    assert {"sls": "pgha.patroni.install"} in running["require"]
    assert running["watch"] == [{"file": "pgha-patroni-config-file-managed"}]


def test_patroni_watchdog_on_systemd(production):
    states = shown(production, "pgha.patroni.watchdog")
    modules = states["pgha-patroni-watchdog-modules-load-file-managed"]
    assert modules["name"] == str(production.path("postgres01", "/etc/modules-load.d/pgha-watchdog.conf"))
    assert modules["contents"].splitlines()[-1] == "softdog"
    assert states["pgha-patroni-watchdog-kmod-present"] == {
        "state": "kmod.present",
        "name": "softdog",
        "require": [{"file": "pgha-patroni-watchdog-udev-rule-file-managed"}],
        "require_in": [{"cmd": "pgha-patroni-watchdog-device-owned"}],
        "order": states["pgha-patroni-watchdog-kmod-present"]["order"],
    }
    rule = states["pgha-patroni-watchdog-udev-rule-file-managed"]
    assert rule["name"] == str(production.path("postgres01", "/etc/udev/rules.d/61-pgha-watchdog.rules"))
    assert rule["contents"].splitlines()[-1] == 'KERNEL=="watchdog", OWNER="postgres", GROUP="postgres", MODE="0600"'
    owned = states["pgha-patroni-watchdog-device-owned"]
    assert owned["name"] == "chown postgres:postgres /dev/watchdog && chmod 0600 /dev/watchdog"
    assert owned["onlyif"] == "test -c /dev/watchdog"
    assert owned["unless"] == "test \"$(stat -L -c '%U:%G:%a' /dev/watchdog)\" = 'postgres:postgres:600'"


def test_patroni_watchdog_off_prepares_nothing(production):
    env = SaltEnv(production.base / "watchdog-off", ["pgha.production"], {"pgha": {
        "secrets": TEST_SECRETS, "patroni": {"watchdog": {"mode": "off"}},
    }}, production.salt_root.parent)
    env.place_pki(PKI_NODES)
    states = shown(env, "pgha.patroni.watchdog")
    assert [state["state"] for state in states.values()] == ["test.nop"]


# ---------------------------------------------------------------------------
# production: HAProxy
# ---------------------------------------------------------------------------


def test_haproxy_global_and_defaults(production):
    sections = haproxy_sections(production)
    assert "maxconn 100" in sections["global"]
    assert "log 127.0.0.1 local2" in sections["global"]
    defaults = sections["defaults"]
    for line in (
        "log global",
        "mode tcp",
        "retries 0",  # the recipe's 2 holds a client on a dead leader (defaults.yaml)
        "timeout client 30m",
        "timeout connect 4s",
        "timeout server 30m",
        "timeout check 5s",
    ):
        assert line in defaults, (line, defaults)


def test_haproxy_stats_page(production):
    stats = haproxy_sections(production)["listen stats"]
    assert "mode http" in stats
    assert "stats enable" in stats
    assert "stats uri /" in stats
    binds = [line for line in stats if line.startswith("bind ")]
    assert len(binds) == 1 and binds[0].endswith(":8080"), binds
    assert binds[0] == "bind 10.131.0.3:8080"
    # hardening: the seed's stats page had no password
    assert f"stats auth stats:{TEST_SECRETS['haproxy_stats_password']}" in stats


def test_haproxy_postgres_listener(production):
    postgres = haproxy_sections(production)["listen postgres"]
    assert "bind *:5432" in postgres
    # GET /primary, 200 and a WAL location in the answer: Patroni queried PostgreSQL and found it a primary
    # (during a promotion it may answer 200 from its own idea of the role, before PostgreSQL takes writes)
    assert postgres[postgres.index("option httpchk"):postgres.index("option httpchk") + 4] == [
        "option httpchk", "http-check send meth GET uri /primary", "http-check expect status 200",
        'http-check expect rstring "\\"xlog\\": \\{\\"location\\""']
    assert "default-server inter 3s fall 3 rise 2 on-marked-down shutdown-sessions" in postgres
    servers = [line for line in postgres if line.startswith("server ")]
    assert servers == [
        f"server {name} {address}:5432 maxconn 100 check port 8008 check-ssl verify required ca-file {ca(production)}"
        for name, address in SEED_SERVERS.items()
    ]


@pytest.mark.parametrize(("listener", "port", "check"), [
    ("postgres_replicas", 5001, "/replica?lag=1048576"),
    ("postgres_sync", 5002, "/sync"),
    ("postgres_async", 5003, "/async"),
])
def test_haproxy_read_paths(production, listener, port, check):
    section = haproxy_sections(production)[f"listen {listener}"]
    assert f"bind *:{port}" in section
    assert "balance roundrobin" in section
    assert f"option httpchk OPTIONS {check}" in section
    assert "http-check expect status 200" in section
    assert [line for line in section if line.startswith("server ")] == [
        f"server {name} {address}:5432 maxconn 100 check port 8008 check-ssl verify required ca-file {ca(production)}"
        for name, address in SEED_SERVERS.items()
    ]


def test_haproxy_config_file_mode(production):
    path = production.path("haproxy", "/etc/haproxy/haproxy.cfg")
    assert mode_owner(path) == ("0o640", "root", "haproxy")


def test_haproxy_accepts_the_config(production):
    path = production.path("haproxy", "/etc/haproxy/haproxy.cfg")
    proc = subprocess.run([HAPROXY, "-c", "-f", str(path)], capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# ---------------------------------------------------------------------------
# production: etcd
# ---------------------------------------------------------------------------


def test_etcd_env(production):
    values = etcd_env(production)
    assert values["ETCD_NAME"] == "etcd"
    assert values["ETCD_LISTEN_PEER_URLS"] == "https://10.131.0.5:2380"
    assert values["ETCD_LISTEN_CLIENT_URLS"].split(",") == ["https://localhost:2379", "https://10.131.0.5:2379"]
    assert values["ETCD_INITIAL_ADVERTISE_PEER_URLS"] == "https://10.131.0.5:2380"
    assert values["ETCD_INITIAL_CLUSTER"] == "etcd=https://10.131.0.5:2380"
    assert values["ETCD_ADVERTISE_CLIENT_URLS"] == "https://10.131.0.5:2379"
    assert values["ETCD_INITIAL_CLUSTER_TOKEN"] == "etcd-cluster"
    assert values["ETCD_INITIAL_CLUSTER_STATE"] == "new"
    assert values["ETCD_DATA_DIR"] == str(production.path("etcd", "/var/lib/etcd/default"))


def test_etcd_env_tls(production):
    values = etcd_env(production)
    pki = production.path("etcd", "/etc/pgha/pki")
    assert values["ETCD_CERT_FILE"] == values["ETCD_PEER_CERT_FILE"] == str(pki / "etcd.crt")
    assert values["ETCD_KEY_FILE"] == values["ETCD_PEER_KEY_FILE"] == str(pki / "etcd.key")
    # members authenticate each other with certificates of the CA
    assert values["ETCD_PEER_TRUSTED_CA_FILE"] == str(pki / "etcd-ca.crt")
    assert values["ETCD_PEER_CLIENT_CERT_AUTH"] == "true"


def test_etcd_settings_placed_before_its_package(production):
    """Debian's etcd-server starts etcd when installed: pgha's settings (and, under systemd, the drop-in) come first."""
    states = shown(production, "pgha.etcd", minion_id="etcd")
    for state_id in ("pgha-etcd-env-file-managed", "pgha-etcd-initial-env-file-managed",
                     "pgha-etcd-unit-dropin-managed", "pgha-etcd-unit-daemon-reloaded"):
        assert states[state_id]["require_in"] == [{"pkg": "pgha-etcd-package-installed"}], state_id
    assert "require" not in states["pgha-etcd-env-file-managed"]  # nothing of the package's is needed for it
    dropin = states["pgha-etcd-unit-dropin-managed"]
    assert dropin["contents"].splitlines()[-1] == f"EnvironmentFile=-{production.path('etcd', '/etc/default/etcd-initial')}"


def test_etcd_files_modes(production):
    assert mode_owner(production.path("etcd", "/etc/default/etcd"))[0] == "0o644"
    assert mode_owner(production.path("etcd", "/var/lib/etcd/default")) == ("0o700", "etcd", "etcd")
    # the member's private key: etcd's alone (it was 0644, root, as placed)
    assert mode_owner(production.path("etcd", "/etc/pgha/pki/etcd.key")) == ("0o600", "etcd", "etcd")


def test_etcd_tls_files_missing_fail_before_any_change(tls_missing):
    env, proc = tls_missing
    assert proc.returncode != 0, proc.stdout
    text = "\n".join(json.loads(proc.stdout)["local"])
    assert "pgha:etcd:tls:key_file: " + str(env.path("etcd", "/etc/pgha/pki/etcd.key")) + " is not a file on etcd" in text
    # the files that are there are not named
    assert "pgha:etcd:tls:cert_file" not in text
    assert sorted(str(path) for path in env.hosts.rglob("*")) == env.before


def test_each_minion_got_only_its_files(production):
    assert sorted(p.name for p in production.hosts.iterdir()) == ["backup", "etcd", "haproxy", "postgres01"]
    assert not production.path("backup", "/etc/patroni").exists()
    assert not production.path("etcd", "/etc/pgbackrest").exists()
    assert not production.path("etcd", "/etc/patroni").exists()
    assert not production.path("etcd", "/etc/haproxy").exists()
    assert not production.path("haproxy", "/etc/default/etcd").exists()
    assert not production.path("postgres01", "/etc/haproxy").exists()


def test_production_secrets_never_in_salt_output(production):
    output = production.outputs()
    assert output.strip()
    for key, secret in TEST_SECRETS.items():
        assert secret not in output, f"{key} appears in salt-call's output"


def test_production_secrets_only_where_needed(production):
    patroni = production.path("postgres01", "/etc/patroni/config.yml").read_text()
    haproxy = production.path("haproxy", "/etc/haproxy/haproxy.cfg").read_text()
    etcd = production.path("etcd", "/etc/default/etcd").read_text()
    for key in ("restapi_password", "replication_password", "superuser_password", "etcd_patroni_password"):
        assert TEST_SECRETS[key] in patroni
    assert TEST_SECRETS["admin_password"] not in patroni
    # etcd's root password stays in pillar: only the orchestration's auth step uses it
    assert not any(TEST_SECRETS["etcd_root_password"] in path.read_text(errors="replace")
                   for path in production.hosts.rglob("*") if path.is_file())
    assert TEST_SECRETS["haproxy_stats_password"] not in patroni
    assert [secret for secret in TEST_SECRETS.values() if secret in haproxy] == [TEST_SECRETS["haproxy_stats_password"]]
    assert not any(secret in etcd for secret in TEST_SECRETS.values())


# ---------------------------------------------------------------------------
# the lab
# ---------------------------------------------------------------------------


def test_lab_patroni(lab):
    config = patroni_config(lab)
    assert config["restapi"]["listen"] == "127.0.0.15:8008"
    assert config["postgresql"]["listen"] == "127.0.0.15:5432"
    assert config["etcd3"]["hosts"] == ["127.0.0.5:2379"]
    assert config["etcd3"]["protocol"] == "https"
    assert config["etcd3"]["username"] == "patroni"
    dcs = config["bootstrap"]["dcs"]
    assert (dcs["ttl"], dcs["loop_wait"], dcs["retry_timeout"]) == (20, 2, 5)
    assert dcs["synchronous_mode"] is True
    assert dcs["synchronous_mode_strict"] is False
    hba = config["postgresql"]["pg_hba"]
    for address in LAB_SERVERS.values():
        assert f"hostssl replication replicator {address}/32 scram-sha-256" in hba
    assert "hostssl replication replicator 127.0.0.1/32 scram-sha-256" in hba
    assert "hostssl all all 127.0.0.1/32 scram-sha-256" in hba
    assert not any(line.startswith("host ") for line in hba)
    assert not any("0.0.0.0/0" in line for line in hba)
    text = lab.path("postgres01", "/etc/patroni/config.yml").read_text()
    assert "10.131." not in text
    assert config["restapi"]["authentication"]["password"] == LAB_SECRETS["restapi_password"]
    # a backlog that a stopping Patroni's queued checks do not fill (patroni:restapi_queue_size)
    assert config["restapi"]["request_queue_size"] == 128


def test_lab_patroni_failsafe_and_no_watchdog(lab):
    config = patroni_config(lab)
    assert config["bootstrap"]["dcs"]["failsafe_mode"] is True
    assert config["watchdog"]["mode"] == "off"
    states = shown(lab, "pgha.patroni.watchdog")
    assert [state["state"] for state in states.values()] == ["test.nop"]


def test_lab_programs_run_with_their_users_home(lab):
    """supervisord keeps root's HOME for a program run as another user: libpq would look for files there."""
    program = shown(lab, "pgha.patroni.service")["pgha-patroni-service-program-managed"]["contents"]
    assert "user=postgres\n" in program
    assert 'environment=HOME="/var/lib/postgresql",USER="postgres",LOGNAME="postgres"\n' in program


def test_lab_patroni_program_from_the_virtualenv(lab):
    states = shown(lab, "pgha.patroni.service")
    program = states["pgha-patroni-service-program-managed"]["contents"]
    venv = str(lab.path("postgres01", "/opt/pgha/patroni"))
    config = str(lab.path("postgres01", "/etc/patroni/config.yml"))
    assert f"command={venv}/bin/patroni {config}" in program.splitlines()
    assert "user=postgres" in program.splitlines()
    assert "pgha-patroni-unit-file-managed" not in states
    running = states["pgha-patroni-service-running"]
    assert (running["state"], running["on_watch"]) == ("pgha_service.running", "reload")
    # a changed program definition reaches the state as a watch (left pending: see pgha_service)
    assert {"file": "pgha-patroni-service-program-managed"} in running["watch"]
    assert states["pgha-patroni-pip-installed"]["name"] == venv


def test_lab_haproxy(lab):
    sections = haproxy_sections(lab)
    postgres = sections["listen postgres"]
    assert "bind 127.0.0.3:5432" in postgres
    assert "bind 127.0.0.3:8080" in sections["listen stats"]
    assert "default-server inter 1s fastinter 250ms downinter 250ms fall 2 rise 1 on-marked-down shutdown-sessions" in postgres
    # the read paths check at inter: their down servers are not polled four times a second
    for name in ("listen postgres_replicas", "listen postgres_sync", "listen postgres_async"):
        assert "default-server inter 1s fall 2 rise 1 on-marked-down shutdown-sessions" in sections[name], name
    assert [line for line in postgres if line.startswith("server ")] == [
        f"server {name} {address}:5432 maxconn 100 check port 8008 check-ssl verify required ca-file {ca(lab)}"
        for name, address in LAB_SERVERS.items()
    ]


def pgbouncer_ini(env: SaltEnv) -> dict[str, dict[str, str]]:
    sections: dict[str, dict[str, str]] = {}
    current = None
    for raw in env.path("haproxy", "/etc/pgbouncer/pgbouncer.ini").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(";"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        current[key.strip()] = value.strip()
    return sections


def test_lab_pgbouncer_in_front_of_the_leader_port(lab):
    ini = pgbouncer_ini(lab)
    assert ini["databases"] == {"*": "host=127.0.0.3 port=5432"}
    pooler = ini["pgbouncer"]
    assert (pooler["listen_addr"], pooler["listen_port"]) == ("127.0.0.3", "6432")
    assert pooler["auth_type"] == "scram-sha-256"
    assert pooler["auth_user"] == "pgha_pooler"
    assert "pgha_pooler_lookup($1)" in pooler["auth_query"]
    # the admin console only through the socket, as PgBouncer's own user
    assert pooler["admin_users"] == ""
    assert pooler["stats_users"] == "pgha_monitor"  # the exporters' role: SHOW only (the lab monitors)
    assert pooler["pool_mode"] == "transaction"
    # a failed server login (no leader behind HAProxy for a moment) retried after 1 s, not PgBouncer's 15
    assert pooler["server_login_retry"] == "1"


def test_lab_pgbouncer_checks_the_servers_certificates(lab):
    pooler = pgbouncer_ini(lab)["pgbouncer"]
    assert pooler["server_tls_sslmode"] == "verify-ca"
    assert pooler["server_tls_ca_file"] == str(lab.path("haproxy", "/etc/pgha/pki/postgresql-ca.crt"))


def test_lab_pgbouncer_auth_file_private(lab):
    auth = lab.path("haproxy", "/etc/pgbouncer/userlist.txt")
    assert mode_owner(auth) == ("0o600", "postgres", "postgres")
    assert auth.read_text() == (f'"pgha_pooler" "{LAB_SECRETS["pooler_password"]}"\n'
                                f'"pgha_monitor" "{LAB_SECRETS["monitor_password"]}"\n')
    assert mode_owner(lab.path("haproxy", "/etc/pgbouncer/pgbouncer.ini")) == ("0o640", "postgres", "postgres")
    # only the haproxy node gets a pooler
    assert not lab.path("postgres01", "/etc/pgbouncer").exists()


def test_lab_etcd(lab):
    values = etcd_env(lab)
    # localhost:2379 stays free in the lab
    assert values["ETCD_LISTEN_CLIENT_URLS"] == "https://127.0.0.5:2379"
    assert values["ETCD_LISTEN_PEER_URLS"] == "https://127.0.0.5:2380"
    assert values["ETCD_INITIAL_CLUSTER"] == "etcd=https://127.0.0.5:2380"


def test_lab_addresses_are_loopback(lab):
    texts = [
        lab.path("postgres01", "/etc/patroni/config.yml").read_text(),
        lab.path("haproxy", "/etc/haproxy/haproxy.cfg").read_text(),
        lab.path("etcd", "/etc/default/etcd").read_text(),
    ]
    for text in texts:
        addresses = set(re.findall(r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b", text))
        assert addresses, text
        assert all(address.startswith("127.0.0.") for address in addresses), addresses


def test_lab_secrets_never_in_salt_output(lab):
    output = lab.outputs()
    for key, secret in LAB_SECRETS.items():
        assert secret not in output, f"{key} appears in salt-call's output"


# ---------------------------------------------------------------------------
# an invalid pillar
# ---------------------------------------------------------------------------


def test_invalid_pillar_fails_naming_the_key(invalid):
    _, proc = invalid
    assert proc.returncode != 0, proc.stdout
    # a render error: a list of messages instead of state results
    messages = json.loads(proc.stdout)["local"]
    assert isinstance(messages, list), messages
    text = "\n".join(messages)
    assert "pgha: the pillar is invalid, nothing was changed" in text
    assert "pgha:patroni:ttl: must be at least 20 (got 10)" in text


def test_invalid_pillar_creates_no_file(invalid):
    env, _ = invalid
    created = [str(path) for path in env.hosts.rglob("*")] if env.hosts.exists() else []
    assert created == []


def test_invalid_pillar_secrets_never_in_salt_output(invalid):
    env, _ = invalid
    output = env.outputs()
    for key, secret in TEST_SECRETS.items():
        assert secret not in output, f"{key} appears in salt-call's output"


def test_three_etcd_members_one_cluster(three_etcd):
    """Each member names the same three peers; a co-located member listens on its own host's address."""
    address = three_etcd.addresses
    expected = ",".join(f"{node}=https://{address[node]}:2380" for node in ("etcd", "postgres01", "postgres02"))
    for node in ("etcd", "postgres01"):
        values = etcd_env(three_etcd, node)
        assert values["ETCD_NAME"] == node
        assert values["ETCD_INITIAL_CLUSTER"] == expected
        assert values["ETCD_LISTEN_CLIENT_URLS"].split(",")[-1] == f"https://{address[node]}:2379"
        assert values["ETCD_INITIAL_CLUSTER_STATE"] == "new"


def test_three_etcd_members_patroni_reaches_all(three_etcd):
    config = patroni_config(three_etcd, "postgres02")
    address = three_etcd.addresses
    assert sorted(config["etcd3"]["hosts"]) == sorted(f"{address[node]}:2379" for node in ("etcd", "postgres01", "postgres02"))
    assert config["etcd3"]["protocol"] == "https"


def test_etcd_initial_settings_apart_and_kept_once_the_member_started(lab):
    """
    What a member starts from with an empty data directory is in its own
    file: a change of membership (here the orchestration's settings for a
    joining member) rewrites it only while the data directory holds no
    member data, and never touches the file whose change restarts etcd.
    """
    assert not any(key.startswith("ETCD_INITIAL_CLUSTER") for key in etcd_env(lab, files=("/etc/default/etcd",)))
    main = lab.path("etcd", "/etc/default/etcd").read_text()
    joining = {"pgha": {"etcd": {"initial_cluster": "postgres01=https://127.0.0.15:2380,etcd=https://127.0.0.5:2380",
                                 "initial_cluster_state": "existing"}}}
    member = lab.path("etcd", "/var/lib/etcd/default/member")
    try:
        proc = lab.call("state.sls", "pgha.etcd.config", "pillar=" + json.dumps(joining), minion_id="etcd")
        assert proc.returncode == 0, proc.stdout
        values = etcd_env(lab)
        assert values["ETCD_INITIAL_CLUSTER"] == "postgres01=https://127.0.0.15:2380,etcd=https://127.0.0.5:2380"
        assert values["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
        assert lab.path("etcd", "/etc/default/etcd").read_text() == main
        # started: the member's data is there; pillar's settings no longer reach the initial file
        member.mkdir(parents=True)
        results = lab.apply("pgha.etcd.config", "etcd")
        initial = next(v for k, v in results.items() if "pgha-etcd-initial-env-file-managed" in k)
        assert initial["changes"] == {} and "unless" in initial["comment"]
        assert etcd_env(lab)["ETCD_INITIAL_CLUSTER_STATE"] == "existing"
    finally:
        if member.exists():
            member.rmdir()
        lab.apply("pgha.etcd.config", "etcd")
    assert etcd_env(lab)["ETCD_INITIAL_CLUSTER_STATE"] == "new"



# ---------------------------------------------------------------------------
# pgBackRest: the backup node's configuration and a PostgreSQL node's
# ---------------------------------------------------------------------------


def pgbackrest_conf(env: SaltEnv, minion_id: str) -> dict[str, dict[str, list[str]]]:
    """pgbackrest.conf as sections of key -> values (a key may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in env.path(minion_id, "/etc/pgbackrest/pgbackrest.conf").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        name, value = line.split("=", 1)
        current.setdefault(name, []).append(value)
    return sections


def test_the_backup_nodes_pgbackrest_serves_the_repository_to_each_postgresql_node(production):
    conf = pgbackrest_conf(production, "backup")
    root = str(production.hosts)
    glob, stanza = conf["global"], conf["postgres"]
    assert glob["repo1-path"] == [f"{root}/backup/var/lib/pgbackrest"]
    assert glob["repo1-retention-full"] == ["4"] and glob["repo1-retention-diff"] == ["7"]
    assert glob["repo1-cipher-type"] == ["aes-256-cbc"]
    assert glob["repo1-cipher-pass"] == [TEST_SECRETS["backup_cipher_password"]]
    assert glob["tls-server-address"] == ["10.131.0.9"] and glob["tls-server-port"] == ["8432"]
    # each PostgreSQL node, named by its certificate's CN (its minion id), may reach this stanza
    assert glob["tls-server-auth"] == ["postgres01=postgres", "postgres02=postgres", "postgres03=postgres"]
    for index, (node, address) in enumerate(SEED_SERVERS.items(), start=1):
        assert stanza[f"pg{index}-host"] == [address] and stanza[f"pg{index}-host-type"] == ["tls"]
        assert stanza[f"pg{index}-path"] == [f"{root}/{node}/var/lib/patroni"]
        assert stanza[f"pg{index}-host-config"] == [f"{root}/{node}/etc/pgbackrest/pgbackrest.conf"]
        assert stanza[f"pg{index}-user"] == ["postgres"]
    assert mode_owner(production.path("backup", "/etc/pgbackrest/pgbackrest.conf")) == ("0o600", "pgbackrest",
                                                                                       "pgbackrest")
    assert mode_owner(production.path("backup", "/etc/pgha/pki/pgbackrest.key"))[:2] == ("0o600", "pgbackrest")
    outputs = production.outputs()
    assert TEST_SECRETS["backup_cipher_password"] not in outputs


def test_a_postgresql_nodes_pgbackrest_reaches_the_repository_over_tls(production):
    conf = pgbackrest_conf(production, "postgres01")
    root = str(production.hosts)
    glob = conf["global"]
    assert glob["repo1-host"] == ["10.131.0.9"] and glob["repo1-host-type"] == ["tls"]
    assert glob["repo1-host-config"] == [f"{root}/backup/etc/pgbackrest/pgbackrest.conf"]
    assert glob["archive-async"] == ["y"] and glob["spool-path"] == [f"{root}/postgres01/var/spool/pgbackrest"]
    assert glob["tls-server-auth"] == ["backup=postgres"]  # only the backup node reaches its data directory
    assert glob["repo1-cipher-pass"] == [TEST_SECRETS["backup_cipher_password"]]
    assert conf["postgres"]["pg1-path"] == [f"{root}/postgres01/var/lib/patroni"]
    assert mode_owner(production.path("postgres01", "/etc/pgbackrest/pgbackrest.conf")) == ("0o600", "postgres",
                                                                                           "postgres")
    pgpass = production.path("postgres01", "/var/lib/postgresql/.pgpass.pgbackrest")
    assert pgpass.read_text() == f"*:5432:*:postgres:{TEST_SECRETS['superuser_password']}\n"
    assert mode_owner(pgpass) == ("0o600", "postgres", "postgres")


def test_patroni_archives_through_pgbackrest_and_builds_replicas_from_the_repository(production):
    config = patroni_config(production)["postgresql"]
    root = str(production.hosts)
    command = f"/usr/bin/pgbackrest --config={root}/postgres01/etc/pgbackrest/pgbackrest.conf --stanza=postgres"
    assert config["parameters"]["archive_mode"] == "on"
    # pgBackRest's archive-push, but for a segment a later timeline superseded (tests/functional/test_archive_push.py)
    assert config["parameters"]["archive_command"] == \
        f"{root}/postgres01/usr/local/sbin/pgha-archive-push {command} archive-push %p"
    assert config["parameters"]["archive_timeout"] == 60
    assert config["recovery_conf"]["restore_command"] == command + ' --io-timeout=2 archive-get %f "%p"'
    assert config["create_replica_methods"] == ["pgbackrest", "basebackup"]
    assert config["pgbackrest"] == {"command": command + " --delta --type=standby restore", "keep_data": True,
                                    "no_params": True}


def test_without_a_backup_node_nothing_of_pgbackrest(tmp_path_factory, salt_root):
    pillar = {"pgha": {"secrets": TEST_SECRETS, "nodes": {"backup": {"roles": ["postgresql"]}}}}
    env = SaltEnv(tmp_path_factory.mktemp("pgha-no-backup"), ["pgha.production"], pillar, salt_root)
    env.place_pki({"postgres01": ["postgresql"]})
    env.apply("pgha.patroni.config", "postgres01")
    config = patroni_config(env)["postgresql"]
    assert "archive_mode" not in config["parameters"] and "create_replica_methods" not in config
    assert not env.path("postgres01", "/etc/pgbackrest/pgbackrest.conf").exists()


def test_the_lab_schedules_backups_with_its_schedule_program(lab):
    lab.place_pki({"backup": ["backup"]})
    states = shown(lab, "pgha.backup.schedule", minion_id="backup")
    program = states["pgha-backup-schedule-service-program-managed"]["contents"]
    assert "user=pgbackrest" in program
    assert ('--full="Sun 01:00" --diff="Mon..Sat 01:00" --incr="*:30"' in program)
    assert "pgha_schedule.py run --script=" in program


def test_real_hosts_schedule_backups_with_systemd_timers(production):
    states = shown(production, "pgha.backup.schedule", minion_id="backup")
    units = states["pgha-backup-full-units-managed"]["names"]
    timer = next(entry for entry in units if next(iter(entry)).endswith("pgha-backup-full.timer"))
    contents = next(iter(timer.values()))[0]["contents"]
    assert "OnCalendar=Sun 01:00" in contents and "Persistent=true" in contents
    assert states["pgha-backup-incr-timer-running"]["name"] == "pgha-backup-incr.timer"
