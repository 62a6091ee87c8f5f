"""
pgBackRest and PostgreSQL's own tools as the formula runs them on a host,
the parts that need no Salt: which side of pgBackRest a host is (the backup
node, or a PostgreSQL node) and the user it runs as there, the command
lines, pgBackRest's errors read back, a restore's arguments checked, the
settings a restored instance starts with, and whether a PostgreSQL runs on
a data directory. The execution module ``pgha_backup`` runs them.
"""

from __future__ import annotations

import os
import re

from salt.exceptions import CommandExecutionError

# what a restore may aim at (pgBackRest's --type), and the ones that take no --target
RESTORE_TYPES = ("name", "time", "lsn", "immediate", "default")
UNTARGETED = ("immediate", "default")
# a restored instance's name: a directory under lookup:pgbackrest:restore_dir
NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,40}")
UNREADABLE = ("the repository's files cannot be read: the passphrase (secrets:backup_cipher_password) is not the "
              "one the repository was made with, or its info files are damaged")


def side(cfg: dict) -> str:
    """``backup`` on the backup node, ``postgresql`` on a PostgreSQL node; an error anywhere else."""
    if not cfg["backup"]["enabled"]:
        raise CommandExecutionError("pgha_backup: the cluster has no backup node (a node with the role backup in "
                                    "pgha:nodes)")
    for role in ("backup", "postgresql"):
        if role in cfg["roles"]:
            return role
    raise CommandExecutionError(f"pgha_backup: {cfg['id']} is neither the backup node nor a PostgreSQL node")


def user(cfg: dict) -> str:
    """pgBackRest's user here: the repository's owner on the backup node, PostgreSQL's elsewhere."""
    return cfg["lookup"]["pgbackrest"]["repo_user"] if side(cfg) == "backup" else cfg["lookup"]["patroni"]["user"]


def env(cfg: dict) -> dict:
    """The environment its commands run with (a PostgreSQL node's superuser password from its pgpass file)."""
    return {} if side(cfg) == "backup" else {"PGPASSFILE": cfg["lookup"]["pgbackrest"]["pgpass_file"]}


def command(cfg: dict, *args: str) -> list[str]:
    """pgBackRest with the formula's configuration file and the cluster's stanza."""
    paths = cfg["lookup"]["pgbackrest"]
    return [paths["binary"], f"--config={paths['config_file']}", f"--stanza={cfg['backup']['stanza']}", *args]


def archive_command(cfg: dict) -> str:
    """PostgreSQL's archive_command: pgha-archive-push running pgBackRest's archive-push of %p (as Patroni's)."""
    return " ".join([cfg["lookup"]["pgbackrest"]["archive_push_file"], *command(cfg, "archive-push", "%p")])


def psql_command(cfg: dict, sql: str, socket_dir: str, port: int, database: str) -> list[str]:
    """psql for one query through a local socket as the superuser: unaligned, tab-separated, no headers."""
    return ["psql", "-X", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-h", socket_dir, "-p", str(port),
            "-U", cfg["users"]["superuser"], "-d", database, "-c", sql]


def unreadable(text: str) -> str | None:
    """What pgBackRest's answer means when it read an encrypted file with the wrong passphrase; else None."""
    return UNREADABLE if "unable to load info file" in text and "FormatError" in text else None


def last_error(ret: dict) -> str:
    """pgBackRest's own error line (``ERROR: [xxx]: ...``) with its hints, else the last line it printed."""
    text = "\n".join(part for part in (ret.get("stderr"), ret.get("stdout")) if part)
    if unreadable(text):
        return unreadable(text)
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        if line.startswith("ERROR:"):
            return " ".join(lines[index:index + 3])
    return lines[-1] if lines else "no output"


def restore_args(what: str, target_type: str, target: str | None) -> list[str]:
    """pgBackRest's restore options for a target (promoted once reached); an error naming what does not fit."""
    if target_type not in RESTORE_TYPES:
        raise CommandExecutionError(f"pgha_backup.{what}: target_type must be one of {', '.join(RESTORE_TYPES)}")
    if (target is None) != (target_type in UNTARGETED):
        raise CommandExecutionError(f"pgha_backup.{what}: target_type {target_type} "
                                    f"{'needs a target' if target is None else 'takes no target'}")
    args = [f"--type={target_type}", "--target-action=promote"] if target_type != "default" else []
    return args + ([f"--target={target}"] if target is not None else [])


def restore_dir(cfg: dict, name: str) -> str:
    """Where the restored instance ``name`` lives; an error for a name that is no plain directory name."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise CommandExecutionError(f"pgha_backup: name must be lowercase letters, digits, _ and - (got {name!r})")
    return os.path.join(cfg["lookup"]["pgbackrest"]["restore_dir"], name)


def settings(port: int, socket_dir: str, config_dir: str, **extra: str) -> str:
    """
    pg_ctl's -o for an instance that must not reach the live cluster: its
    own socket and no TCP, no synchronous standby, the hba and ident files
    of ``config_dir``; ``extra`` settings after those.
    """
    given = {"port": str(port), "listen_addresses": "''", "unix_socket_directories": socket_dir,
             "synchronous_standby_names": "''", "hba_file": f"{config_dir}/pg_hba.conf",
             "ident_file": f"{config_dir}/pg_ident.conf", **extra}
    return " ".join(f"-c {name}={value}" for name, value in given.items())


def log_tail(log_file: str, lines: int = 3) -> str:
    """PostgreSQL's last FATAL and ERROR lines in a log file, or where to look."""
    if not os.path.exists(log_file):
        return "no log"
    with open(log_file, encoding="utf-8", errors="replace") as handle:
        found = [line.strip() for line in handle if "FATAL" in line or "ERROR" in line]
    return " | ".join(found[-lines:]) or "see " + log_file


def refuse_running(data_dir: str) -> None:
    """Refuse while a PostgreSQL runs on ``data_dir`` (its postmaster.pid names a live process)."""
    pid_file = os.path.join(data_dir, "postmaster.pid")
    if os.path.exists(pid_file):
        with open(pid_file, encoding="utf-8") as handle:
            pid = handle.readline().strip()
        if pid.isdigit() and os.path.exists(f"/proc/{pid}"):
            raise CommandExecutionError(f"pgha_backup: PostgreSQL runs on {data_dir} (pid {pid}); stop Patroni first")


def write_text(path: str, text: str) -> None:
    """A small file replaced whole (a reader never sees half of it), mode 0644; its directory must exist."""
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
