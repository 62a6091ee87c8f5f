"""Unit tests of _utils/pgha_fileserver.py: what a master's file server must not serve."""

from __future__ import annotations

from pgha_test_helpers import load

fileserver = load("_utils", "pgha_fileserver")
SECRETS = {"superuser_password": "Su-pw-7f3a91c2e8", "short": "abc"}


def test_the_formula_alone_is_safe(tmp_path):
    (tmp_path / "salt").mkdir()
    (tmp_path / "salt" / "top.sls").write_text("base: {}\n")
    (tmp_path / "pillar").mkdir()
    served = [("base", "top.sls", str(tmp_path / "salt" / "top.sls"))]
    assert fileserver.problems(served, {"base": [str(tmp_path / "pillar")]}, SECRETS) == []


def test_a_link_into_the_pillar_is_found_by_where_it_leads(tmp_path):
    (tmp_path / "pillar").mkdir()
    (tmp_path / "pillar" / "top.sls").write_text("base: {}\n")
    (tmp_path / "salt").mkdir()
    (tmp_path / "salt" / "shared").symlink_to(tmp_path / "pillar")
    served = [("base", "shared/top.sls", str(tmp_path / "salt" / "shared" / "top.sls"))]
    [line] = fileserver.problems(served, {"base": [str(tmp_path / "pillar")], "dev": None}, SECRETS)
    assert f"1 file(s) under the pillar root {tmp_path / 'pillar'}: salt://shared/top.sls" in line


def test_secret_values_found_named_by_key_never_shown(tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("Su-pw-7f3a91c2e8 abc\n")
    [line] = fileserver.problems([("dev", "note.txt", str(note))], {}, SECRETS)
    assert "salt://note.txt (saltenv dev)" in line and "pgha:secrets:superuser_password" in line
    assert "Su-pw-7f3a91c2e8" not in line
    # a value too short to be told from chance is not searched for
    assert "pgha:secrets:short" not in line


def test_many_files_under_a_pillar_root_are_one_line(tmp_path):
    (tmp_path / "pillar").mkdir()
    served = []
    for index in range(8):
        path = tmp_path / "pillar" / f"f{index}.sls"
        path.write_text("x: 1\n")
        served.append(("base", f"pillar/f{index}.sls", str(path)))
    [line] = fileserver.problems(served, {"base": [str(tmp_path / "pillar")]}, {})
    assert line.count("salt://") == fileserver.SHOWN and "and 3 more" in line
