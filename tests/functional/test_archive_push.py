"""
pgha-archive-push, PostgreSQL's archive_command on the PostgreSQL nodes: the
script pgha.pgbackrest.config renders, run as PostgreSQL runs it (from the data
directory, `pgha-archive-push pg_wal/<file>`) on a pg_wal made here, with a
stand-in for pgBackRest that records what it is asked to push. A segment of a
timeline that ended inside or before it is left out (a former leader's own
copy of the segment its timeline ended in: two such copies pushed made
pgBackRest refuse the second for good, and archiving stopped); everything
else goes to archive-push, whose exit status PostgreSQL gets.
"""

from __future__ import annotations

import os
import pathlib
import subprocess

import pytest
from pgha_test_helpers import TEST_SECRETS
from test_rendering import PKI_NODES, SaltEnv, salt_root  # noqa: F401 (salt_root: a fixture)

STAND_IN = """#!/bin/sh
echo "$@" >> "$(dirname "$0")/calls"
exit "${STAND_IN_EXIT:-0}"
"""
MIB = 1024 * 1024
# timeline 1 ended at 0/3000158 (inside segment 3), timeline 2 at 0/5000028 (inside segment 5): the cluster is on 3
HISTORY_2 = "1\t0/3000158\tno recovery target specified\n"
HISTORY_3 = HISTORY_2 + "2\t0/5000028\tno recovery target specified\n"


@pytest.fixture(scope="module")
def script(tmp_path_factory, salt_root) -> tuple[pathlib.Path, pathlib.Path]:  # noqa: F811
    """The rendered script on postgres01, and the stand-in for pgBackRest it is given."""
    bin_dir = tmp_path_factory.mktemp("stand-in-pgbackrest")
    stand_in = bin_dir / "pgbackrest"
    stand_in.write_text(STAND_IN)
    stand_in.chmod(0o755)
    env = SaltEnv(tmp_path_factory.mktemp("pgha-archive-push"), ["pgha.production"], {"pgha": {"secrets": TEST_SECRETS}},
                  salt_root)
    env.place_pki(PKI_NODES)
    results = env.apply("pgha.pgbackrest.config", "postgres01")
    assert any("pgha-pgbackrest-archive-push-file-managed" in key for key in results)
    path = env.path("postgres01", "/usr/local/sbin/pgha-archive-push")
    assert path.stat().st_mode & 0o777 == 0o755
    return path, bin_dir


def data_dir(tmp_path: pathlib.Path, histories: dict[str, str], segments: list[str], size: int = 16 * MIB):
    """A data directory whose pg_wal holds these history files and segments (sparse, `size` bytes each)."""
    wal = tmp_path / "pg_wal"
    wal.mkdir()
    for name, text in histories.items():
        (wal / name).write_text(text)
    for name in segments:
        with open(wal / name, "wb") as handle:
            handle.truncate(size)
    return tmp_path


def archive(script, directory: pathlib.Path, name: str, exit_status: int = 0) -> tuple[int, str, list[str]]:
    """Run the script as PostgreSQL does: its exit status, its stderr, what pgBackRest was asked since."""
    path, bin_dir = script
    calls = bin_dir / "calls"
    calls.unlink(missing_ok=True)
    env = dict(os.environ, STAND_IN_EXIT=str(exit_status))
    command = [str(path), str(bin_dir / "pgbackrest"), "--stanza=postgres", "archive-push", f"pg_wal/{name}"]
    proc = subprocess.run(command, cwd=directory, env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    return proc.returncode, proc.stderr, calls.read_text().splitlines() if calls.exists() else []


def test_a_segment_its_timeline_ended_in_or_before_is_left_out_and_said(script, tmp_path):
    names = ["000000010000000000000003", "000000010000000000000004", "000000020000000000000005"]
    directory = data_dir(tmp_path, {"00000002.history": HISTORY_2, "00000003.history": HISTORY_3}, names)
    for name, switch in zip(names, ["0/3000158", "0/3000158", "0/5000028"]):
        status, stderr, calls = archive(script, directory, name)
        assert (status, calls) == (0, []), (name, stderr)
        assert f"{name} not archived" in stderr and f"ended at {switch}" in stderr and "00000003.history" in stderr


def test_every_other_file_goes_to_archive_push_with_its_exit_status(script, tmp_path):
    names = ["000000010000000000000002", "000000020000000000000004", "000000030000000000000005",
             "000000030000000000000009", "000000020000000000000005.partial", "00000003.history",
             "000000030000000000000005.00000028.backup"]
    directory = data_dir(tmp_path, {"00000003.history": HISTORY_3}, names[:5])
    for name in names:
        status, stderr, calls = archive(script, directory, name)
        assert status == 0 and stderr == "", (name, stderr)
        assert calls == [f"--stanza=postgres archive-push pg_wal/{name}"]
    # PostgreSQL retries what archive-push refused
    assert archive(script, directory, "000000030000000000000005", exit_status=45)[0] == 45


def test_a_segment_ending_at_the_switch_point_and_a_timeline_off_the_history_are_pushed(script, tmp_path):
    # timeline 1 ended exactly where segment 5 ends; timeline 3 was a branch the newest (5) does not descend from
    history = "1\t0/6000000\tno recovery target specified\n2\t0/7000000\tbefore 2026-12-05 10:00:00+00\n" \
              "4\t0/9000000\tno recovery target specified\n"
    names = ["000000010000000000000005", "000000030000000000000008"]
    directory = data_dir(tmp_path, {"00000005.history": history}, names + ["000000010000000000000006"])
    for name in names:
        assert archive(script, directory, name)[2][0].endswith(f"archive-push pg_wal/{name}")
    assert archive(script, directory, "000000010000000000000006")[2] == []


def test_without_a_command_it_says_how_to_call_it(script):
    (script[1] / "calls").unlink(missing_ok=True)
    proc = subprocess.run([str(script[0]), "pg_wal/000000010000000000000001"], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode == 2 and "usage:" in proc.stderr and not (script[1] / "calls").exists()


def test_no_history_a_cluster_on_its_first_timeline_pushes_everything(script, tmp_path):
    directory = data_dir(tmp_path, {}, ["000000010000000000000007"])
    assert archive(script, directory, "000000010000000000000007")[2][0].endswith("pg_wal/000000010000000000000007")


def test_the_segment_size_is_the_files_own(script, tmp_path):
    # with 64 MiB segments, segment 1 of timeline 1 holds 0/4000000-0/8000000: the switch point 0/5000028 is in it
    history = "1\t0/5000028\tno recovery target specified\n"
    directory = data_dir(tmp_path, {"00000002.history": history},
                         ["000000010000000000000001", "000000010000000000000000"], size=64 * MIB)
    status, _, calls = archive(script, directory, "000000010000000000000001")
    assert (status, calls) == (0, [])
    assert archive(script, directory, "000000010000000000000000")[2][0].endswith("pg_wal/000000010000000000000000")
