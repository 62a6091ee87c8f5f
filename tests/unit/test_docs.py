"""
The manual: the generated pages are those `make docs` writes from their sources (defaults.yaml, the
runner's and modules' docstrings), the README stays short, and every relative link leads somewhere.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from pgha_test_helpers import REPO

from docs import __main__ as docs_main
from docs import generate

PAGES = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").rglob("*.md"))
LINKED = ["README.md", *PAGES]
# [text](target): a Markdown link; code spans and fenced blocks are removed first.
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """The generator run into a directory of its own, as `python -m docs --out DIR`."""
    out = tmp_path_factory.mktemp("docs")
    assert docs_main.main(["python -m docs", "--out", str(out)]) == 0
    return out


@pytest.mark.parametrize("path", sorted(generate.outputs()))
def test_generated_file_is_up_to_date(generated, path):
    committed = REPO / path
    assert committed.exists(), f"{path} is missing: run `make docs`"
    assert (generated / path).read_text() == committed.read_text(), (
        f"{path} is stale (its sources changed since it was generated): run `make docs`")


def test_generation_is_deterministic():
    assert generate.outputs() == generate.outputs()


def test_every_default_key_is_in_the_pillar_reference():
    page = (REPO / generate.PILLAR_MD).read_text()

    def paths(tree, prefix=("pgha",)):
        for key, value in tree.items():
            yield prefix + (key,)
            if isinstance(value, dict) and value:
                yield from paths(value, prefix + (key,))

    defaults = yaml.safe_load((REPO / generate.DEFAULTS).read_text())
    missing = [":".join(path) for path in paths(defaults) if f"`{':'.join(path)}`" not in page]
    assert missing == []


def test_a_comment_goes_with_the_key_below_it():
    text = "---\n# Section.\ntop:\n  # About a.\n  # More.\n  a: 1\n\n  # Loose.\n\n  b: {}\n  c:\n    d: x\n"
    (top,) = generate.parse_defaults(text)
    assert (top.path, top.comment, top.block) == (("top",), "Section.", True)
    a, b, c = top.children
    assert (a.path, a.comment, a.block) == (("top", "a"), "About a. More.", False)
    assert (b.comment, b.block) == ("", False)
    assert c.block and c.children[0].path == ("top", "c", "d")


def test_docstrings_become_markdown():
    doc = ("Does ``x``\nacross ``two\nlines``.\n\nname\n    The ``name``.\n\nCLI Example:\n\n"
           ".. code-block:: bash\n\n    salt '*' mod.fun a=1\n")
    assert generate.markdown(doc) == [
        "Does `x`", "across `two", "lines`.", "", "- `name`: The `name`.", "", "CLI Example:", "",
        "```sh", "salt '*' mod.fun a=1", "```"]


def test_the_readme_is_short():
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= 300, f"README.md has {lines} lines; the manual's pages are in docs/"


def links(path: str) -> list[str]:
    text = CODE_SPAN.sub("", FENCE.sub("", (REPO / path).read_text()))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def anchors(path: Path) -> set[str]:
    """GitHub's anchors of a page's headings."""
    found = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            found.add(re.sub(r"\s", "-", re.sub(r"[^\w\- ]", "", title)))
    return found


@pytest.mark.parametrize("page", LINKED)
def test_relative_links_lead_to_files(page):
    broken = []
    for target in links(page):
        file, _, anchor = target.partition("#")
        resolved = (REPO / page).parent / file if file else REPO / page
        if not resolved.exists() or (anchor and (resolved.is_dir() or anchor not in anchors(resolved))):
            broken.append(target)
    assert broken == [], f"{page}: links to nothing: {broken}"


def test_every_page_is_linked_from_the_map():
    index = set(links("docs/index.md"))
    assert {p.removeprefix("docs/") for p in PAGES} - {"index.md"} <= index
