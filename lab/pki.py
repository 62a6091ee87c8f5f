"""
The lab's stand-in for an operator's PKI: a CA (kept in the lab's ``pki``
directory, 0700: ``.lab/pki/ca.crt``) and, for each etcd node, a certificate
for its address (usable for server and client authentication, so peers can
authenticate each other); for each PostgreSQL node, one for its address and
HAProxy's (clients that verify the host reach it through HAProxy); for
the backup node and each PostgreSQL node, pgBackRest's (CN its minion id,
its address as an IP and a DNS name); for every host, the exporters' (its
address). Placed
where the formula expects them under each host's root; the CA goes to every
host, as etcd's CA and as PostgreSQL's. Kept across runs. Needs openssl.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable

import yaml

from lab import REPO
from lab.config import write


def tls_paths(section: str = "etcd", repo: str = REPO) -> dict[str, str]:
    """Where the formula looks for ``section``'s TLS files (defaults.yaml: etcd, postgresql, backup, monitor), on each host."""
    with open(os.path.join(repo, "salt", "pgha", "parameters", "defaults.yaml"), encoding="utf-8") as handle:
        tls = yaml.safe_load(handle)[section]["tls"]
    return {key: tls[key] for key in ("ca_file", "cert_file", "key_file")}


def _openssl(*args: str) -> None:
    ret = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if ret.returncode != 0:
        raise SystemExit(f"lab: openssl {args[0]} failed: {ret.stderr.strip()}")


def _certified_for(crt: str, addresses: list[str], dns: bool = False) -> bool:
    ret = subprocess.run(["openssl", "x509", "-in", crt, "-noout", "-ext", "subjectAltName"],
                         capture_output=True, text=True, check=False)
    return all(f"IP Address:{address}" in ret.stdout and (not dns or f"DNS:{address}" in ret.stdout)
               for address in addresses)


def _ca(ca_dir: str) -> tuple[str, str]:
    os.makedirs(ca_dir, mode=0o700, exist_ok=True)
    os.chmod(ca_dir, 0o700)
    ca_key, ca_crt = os.path.join(ca_dir, "ca.key"), os.path.join(ca_dir, "ca.crt")
    if not (os.path.exists(ca_key) and os.path.exists(ca_crt)):
        _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                 "-keyout", ca_key, "-out", ca_crt, "-days", "3650", "-subj", "/CN=pgha lab CA")
    return ca_key, ca_crt


def _issue(ca_dir: str, name: str, addresses: list[str], ca: tuple[str, str], cn: str | None = None,
           dns: bool = False) -> tuple[str, str]:
    """
    A key and a certificate for ``addresses`` (and 127.0.0.1, localhost),
    signed by the lab's CA; kept. ``cn``: its subject's CN (default
    ``name``); ``dns``: the addresses as DNS names too (pgBackRest 2.45
    checks a server's host against its certificate's DNS names only).
    """
    key, crt = os.path.join(ca_dir, f"{name}.key"), os.path.join(ca_dir, f"{name}.crt")
    addresses = list(dict.fromkeys([*addresses, "127.0.0.1"]))
    if os.path.exists(key) and os.path.exists(crt) and _certified_for(crt, addresses, dns):
        return key, crt
    ext = os.path.join(ca_dir, f"{name}.ext")
    names = [f"IP:{address}" for address in addresses] + ([f"DNS:{address}" for address in addresses] if dns else [])
    write(ext, "\n".join([
        "subjectAltName=" + ",".join(names) + ",DNS:localhost",
        "extendedKeyUsage=serverAuth,clientAuth",
        "keyUsage=digitalSignature,keyEncipherment",
        "basicConstraints=CA:FALSE",
        "",
    ]), mode=0o600)
    csr = os.path.join(ca_dir, f"{name}.csr")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-keyout", key, "-out", csr, "-subj", f"/CN={cn or name}")
    _openssl("x509", "-req", "-in", csr, "-CA", ca[1], "-CAkey", ca[0], "-CAcreateserial",
             "-out", crt, "-days", "3650", "-extfile", ext)
    return key, crt


def place(ca_dir: str, host_root: Callable[[str], str], nodes: dict[str, dict], repo: str = REPO) -> str:
    """
    The CA on every host (for etcd and for PostgreSQL), and each etcd and
    PostgreSQL node's certificate and key on it, at the formula's default
    paths under the host's root. Returns the CA's path.
    """
    ca = _ca(ca_dir)
    with open(ca[1], encoding="utf-8") as handle:
        ca_text = handle.read()
    proxies = [node["address"] for node in nodes.values() if "haproxy" in node.get("roles", [])]
    for node_id, node in nodes.items():
        root = host_root(node_id)
        roles = node.get("roles", [])
        for section, extra, suffix in (("etcd", [], ""), ("postgresql", proxies, "-postgresql")):
            paths = tls_paths(section, repo)
            _place(root + paths["ca_file"], ca_text)
            if section in roles:
                _put(root, paths, _issue(ca_dir, node_id + suffix, [node["address"], *extra], ca))
        # pgBackRest's servers and clients (the backup node and the PostgreSQL nodes): CN the minion id
        if {"backup", "postgresql"} & set(roles):
            paths = tls_paths("backup", repo)
            _place(root + paths["ca_file"], ca_text)
            _put(root, paths, _issue(ca_dir, node_id + "-pgbackrest", [node["address"]], ca, cn=node_id, dns=True))
        # the exporters' https (monitor:tls): every host's certificate for its address; the CA on every host
        if roles:
            paths = tls_paths("monitor", repo)
            _place(root + paths["ca_file"], ca_text)
            _put(root, paths, _issue(ca_dir, node_id + "-monitor", [node["address"]], ca))
    return ca[1]


def _put(root: str, paths: dict[str, str], issued: tuple[str, str]) -> None:
    key, crt = issued
    with open(crt, encoding="utf-8") as handle:
        _place(root + paths["cert_file"], handle.read())
    with open(key, encoding="utf-8") as handle:
        _place(root + paths["key_file"], handle.read(), mode=0o600)


def _place(path: str, text: str, mode: int = 0o644) -> None:
    """
    A file on a host as a PKI would place it. One already there with this
    content is left alone: the formula has made the key its service's
    (owner postgres or etcd, 0600), and a service restarted before the
    states run again must still read it.
    """
    if os.path.exists(path):
        with open(path, encoding="utf-8") as handle:
            if handle.read() == text:
                return
    write(path, text, mode=mode)
