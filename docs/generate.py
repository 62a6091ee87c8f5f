"""
The generated parts of pgha's manual, each from its one source:

- docs/reference/pillar.md: every key of salt/pgha/parameters/defaults.yaml,
  its default (the YAML's value) and the comment written above it;
- pillar.example: defaults.yaml under ``pgha:``, comments and all, with the
  recipe's five hosts of pillar/pgha/production.sls as ``nodes``;
- docs/reference/commands.md: the runner's public functions (_runners/pgha.py and pgha_data.py),
  their signatures and docstrings;
- docs/reference/modules.md: the same for the execution modules (_modules/)
  and the state modules (_states/), each with its module docstring.

The Python files are read with ``ast``, never imported (they need Salt's
loader). The output depends on the sources alone: the same sources give the
same bytes. ``outputs()`` returns the texts; ``write()`` puts them under a
directory (the repository's, or another one to compare with).
"""

from __future__ import annotations

import ast
import os
import re
import textwrap

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULTS = "salt/pgha/parameters/defaults.yaml"
PRODUCTION = "pillar/pgha/production.sls"
# The runner's modules, all in the pgha namespace: the operator's view and operations, then getting data back.
RUNNERS = ("_runners/pgha.py", "_runners/pgha_data.py")
MODULE_DIRS = (("_modules", "Execution module"), ("_states", "State module"))
# The files `make docs` writes, relative to the repository's root.
PILLAR_MD = "docs/reference/pillar.md"
COMMANDS_MD = "docs/reference/commands.md"
MODULES_MD = "docs/reference/modules.md"
PILLAR_EXAMPLE = "pillar.example"
# Code-block languages of the docstrings, as the fenced blocks name them.
LANGUAGES = {"bash": "sh"}

KEY_LINE = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_][A-Za-z0-9_.-]*):(?:[ ]+(?P<value>\S.*))?$")
CODE_BLOCK = re.compile(r"^(?P<indent>\s*)\.\. code-block::\s*(?P<lang>\S+)\s*$")
TERM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
DOCS_PAGE = re.compile(r"\bdocs/([a-z0-9_/-]+\.md)\b")


def read(repo: str, path: str) -> str:
    with open(os.path.join(repo, path), encoding="utf-8") as handle:
        return handle.read()


# -- the pillar: defaults.yaml's keys, values and comments -------------------------------------------------------


class Key:
    """One key of defaults.yaml: its path, the comment above it, whether it opens a block of keys."""

    def __init__(self, path: tuple[str, ...], comment: str, block: bool):
        self.path, self.comment, self.block = path, comment, block
        self.children: list[Key] = []


def yaml_body(text: str) -> str:
    """The YAML after its header (the comment lines before the document start, ``---``)."""
    return re.split(r"^---[ \t]*\n", text, maxsplit=1, flags=re.MULTILINE)[-1]


def parse_defaults(text: str) -> list[Key]:
    """
    The top-level keys of defaults.yaml as a tree, each with the comment block written
    immediately above it (a blank line ends a comment that belongs to no key).
    """
    body = yaml_body(text)
    roots: list[Key] = []
    stack: list[tuple[int, Key]] = []
    comment: list[str] = []
    for number, line in enumerate(body.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("- "):
            comment = []
            continue
        if stripped.startswith("#"):
            comment.append(stripped[1:].strip())
            continue
        match = KEY_LINE.match(line)
        if not match:
            raise ValueError(f"{DEFAULTS}: line {number} after '---' is neither a key nor a comment: {line!r}")
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1] if stack else None
        key = Key((parent.path if parent else ()) + (match["key"],), " ".join(comment), match["value"] is None)
        (parent.children if parent else roots).append(key)
        if key.block:
            stack.append((indent, key))
        comment = []
    return roots


def value_at(data: dict, path: tuple[str, ...]):
    for part in path:
        data = data[part]
    return data


def show(value) -> str:
    """A default as YAML in one line, in a code span."""
    text = yaml.safe_dump(value, default_flow_style=True, width=1 << 20, sort_keys=False).strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")].strip()
    return f"`{text}`"


def escape(text: str) -> str:
    """
    Markdown's special `<` and `*` taken literally, outside code spans; a manual page named
    there (docs/how-to/tls.md) becomes a link, relative to the generated pages in docs/reference/.
    """
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("<", "\\<").replace("*", "\\*")
        parts[i] = DOCS_PAGE.sub(lambda page: f"[{page[0]}](../{page[1]})", parts[i])
    return "`".join(parts)


def cell(text: str) -> str:
    return escape(text).replace("|", "\\|") if text else ""


def name(path: tuple[str, ...]) -> str:
    return "`" + ":".join(("pgha",) + path) + "`"


def pillar_section(key: Key, data: dict, level: int) -> list[str]:
    """One block of keys: its heading, its comment, a table of its plain keys, then its blocks of keys."""
    lines = ["#" * level + " " + name(key.path), ""]
    if key.comment:
        lines += [escape(key.comment), ""]
    if not key.block:
        return lines + [f"Default: {show(value_at(data, key.path))}", ""]
    leaves = [child for child in key.children if not child.block]
    if leaves:
        lines += ["| key | default | meaning |", "|---|---|---|"]
        lines += [f"| {name(child.path)} | {cell(show(value_at(data, child.path)))} | {cell(child.comment)} |"
                  for child in leaves]
        lines.append("")
    for child in key.children:
        if child.block:
            lines += pillar_section(child, data, 3)
    return lines


def pillar_md(repo: str) -> str:
    text = read(repo, DEFAULTS)
    data = yaml.safe_load(text)
    roots = parse_defaults(text)
    lines = ["<!-- Generated by `make docs` from salt/pgha/parameters/defaults.yaml: do not edit by hand. -->", "",
             "# Pillar reference", "",
             ("> Generated by `make docs` from the comments and values of "
              "[salt/pgha/parameters/defaults.yaml](../../salt/pgha/parameters/defaults.yaml): do not edit this "
              "page by hand; edit the comments there and run `make docs`."), "",
             ("Every key of the pgha pillar lives under `pgha`. This page lists each one with its default and what "
              "it means. The defaults are merged, in this order, with "
              "`salt/pgha/parameters/os_family/<os_family>.yaml`, pillar `pgha:lookup` and pillar `pgha` "
              "(`pgha_config.mapdata`). An unknown key is an error (a typo must not pass silently): "
              "`salt-run pgha.validate` names it by its full path. Only `nodes` and `secrets` have no usable "
              "default: see [pillar/pgha/production.sls](../../pillar/pgha/production.sls) for the recipe's "
              "cluster, [pillar/pgha/lab.sls](../../pillar/pgha/lab.sls) for the lab, and "
              "[pillar.example](../../pillar.example) for every key in one file (made by `make docs` from the same "
              "defaults). How to check a pillar before anything changes: "
              "[Using pgha on real hosts](../how-to/production.md)."), ""]
    lines.append("Top-level keys: " + ", ".join(name(root.path) for root in roots) + ".")
    lines.append("")
    for root in roots:
        lines += pillar_section(root, data, 2)
    return "\n".join(lines).rstrip("\n") + "\n"


def pillar_example(repo: str) -> str:
    """defaults.yaml under `pgha:`, with the production pillar's nodes in place of its empty `nodes`."""
    body = yaml_body(read(repo, DEFAULTS))
    nodes = yaml.safe_load(read(repo, PRODUCTION))["pgha"]["nodes"]
    node_lines = ["  nodes:"] + [
        "    " + yaml.safe_dump({node_id: node}, default_flow_style=True, width=1 << 20, sort_keys=False).strip()
        .removeprefix("{").removesuffix("}")
        for node_id, node in nodes.items()
    ]
    out, replaced = [], False
    for line in body.splitlines():
        if line == "nodes: {}":
            out += node_lines
            replaced = True
        else:
            out.append("  " + line if line.strip() else line)
    if not replaced:
        raise ValueError(f"{DEFAULTS}: no top-level line 'nodes: {{}}' to fill with {PRODUCTION}'s nodes")
    header = [
        "# -*- coding: utf-8 -*-",
        "# vim: ft=yaml",
        "# Every key of the pgha pillar, with its default (from",
        "# salt/pgha/parameters/defaults.yaml) and a comment. Only `nodes` and",
        "# `secrets` have no usable default. See pillar/pgha/production.sls for the",
        "# recipe's cluster and pillar/pgha/lab.sls for the one-machine lab.",
        "# Generated by `make docs` from defaults.yaml (nodes: the recipe's five",
        "# hosts, from pillar/pgha/production.sls): do not edit by hand.",
        "---",
        "pgha:",
    ]
    return "\n".join(header + out) + "\n"


# -- the runner and the modules: their docstrings ----------------------------------------------------------------


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip())


def inline(text: str) -> str:
    """reStructuredText's ``literal`` as Markdown's `literal`; the rest taken literally."""
    return escape(re.sub(r"``(.+?)``", r"`\1`", text, flags=re.DOTALL))


def markdown(doc: str) -> list[str]:
    """
    A docstring as Markdown: ``.. code-block:: lang`` and its indented block as a fenced block
    (bash as sh), a parameter list (a name, then its indented description) as a bullet list,
    double-backquoted literals (within a paragraph, across its lines) as code spans.
    """
    lines = doc.splitlines()
    out: list[str] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            out.extend(inline("\n".join(paragraph)).split("\n"))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        block = CODE_BLOCK.match(line)
        following = lines[i + 1] if i + 1 < len(lines) else ""
        if block:
            flush()
            base, lang = len(block["indent"]), LANGUAGES.get(block["lang"], block["lang"])
            i += 1
            code = []
            while i < len(lines) and (not lines[i].strip() or indent_of(lines[i]) > base):
                code.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(code)).strip("\n").splitlines()
            if out and out[-1]:
                out.append("")
            out += [f"```{lang}", *code, "```", ""]
        elif not paragraph and TERM.match(line) and following.strip() and indent_of(following) >= 2:
            i += 1
            description = []
            while i < len(lines) and lines[i].strip() and indent_of(lines[i]) >= 2:
                description.append(lines[i].strip())
                i += 1
            out.append(f"- `{line}`: {inline(' '.join(description))}")
        elif not line.strip():
            flush()
            if out and out[-1]:
                out.append("")
            i += 1
        else:
            paragraph.append(line.strip() if indent_of(line) >= 4 else line)
            i += 1
    flush()
    while out and not out[-1]:
        out.pop()
    return out


def signature(function: ast.FunctionDef | ast.AsyncFunctionDef, qualified: str) -> str:
    """``module.function(arg, key=default, ...)``: the parameters with their defaults, without annotations."""
    args = function.args
    positional = args.posonlyargs + args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    parts = [arg.arg if default is None else f"{arg.arg}={ast.unparse(default)}"
             for arg, default in zip(positional, defaults)]
    if args.vararg:
        parts.append("*" + args.vararg.arg)
    elif args.kwonlyargs:
        parts.append("*")
    parts += [arg.arg if default is None else f"{arg.arg}={ast.unparse(default)}"
              for arg, default in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        parts.append("**" + args.kwarg.arg)
    return f"{qualified}({', '.join(parts)})"


def virtualname(tree: ast.Module, path: str) -> str:
    """The name Salt's loader gives the module: its ``__virtualname__``, else the file's name."""
    for node in tree.body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__virtualname__"
                                                 for t in node.targets)
                and isinstance(node.value, ast.Constant)):
            return node.value.value
    return os.path.splitext(os.path.basename(path))[0]


def public_functions(tree: ast.Module):
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node


def functions_md(repo: str, path: str, level: int) -> tuple[str, list[str]]:
    """A module's docstring, then each public function: its signature and its docstring."""
    tree = ast.parse(read(repo, path), filename=path)
    module = virtualname(tree, path)
    lines = markdown(ast.get_docstring(tree) or "")
    lines = (lines + [""]) if lines else []
    for function in public_functions(tree):
        qualified = f"{module}.{function.name}"
        lines += ["#" * level + f" `{qualified}`", "", "```python", signature(function, qualified), "```", ""]
        doc = ast.get_docstring(function)
        lines += (markdown(doc) + [""]) if doc else ["(no docstring)", ""]
    return module, lines


def commands_md(repo: str) -> str:
    body: list[str] = []
    for path in RUNNERS:
        _, lines = functions_md(repo, path, 3)
        body += [f"## [{path}](../../{path})", "", *lines]
    sources = " and ".join(f"[{path}](../../{path})" for path in RUNNERS)
    lines = [f"<!-- Generated by `make docs` from {', '.join(RUNNERS)}: do not edit by hand. -->", "",
             "# Runner reference: `salt-run pgha.*`", "",
             (f"> Generated by `make docs` from the docstrings of {sources}: do not edit this "
              "page by hand; edit the docstrings and run `make docs`."), "",
             ("Every public function of the pgha runner, run on the Salt master as `salt-run pgha.<function>`, "
              "with its parameters and their defaults (given on the command line as `key=value`); its two "
              "modules share the `pgha` namespace. An overview of "
              "the operator's commands, the runner's and the modules', is in "
              "[Operator commands](operator-commands.md); the execution and state modules are in "
              "[Modules reference](modules.md)."), ""]
    return "\n".join(lines + body).rstrip("\n") + "\n"


def module_files(repo: str, directory: str) -> list[str]:
    return sorted(f"{directory}/{entry}" for entry in os.listdir(os.path.join(repo, directory))
                  if entry.endswith(".py") and not entry.startswith("_"))


def modules_md(repo: str) -> str:
    sources = ", ".join(f"{directory}/*.py" for directory, _ in MODULE_DIRS)
    lines = [f"<!-- Generated by `make docs` from {sources}: do not edit by hand. -->", "",
             "# Modules reference: execution and state modules", "",
             "> Generated by `make docs` from the docstrings of " + " and ".join(
                 f"[{directory}/](../../{directory}/)" for directory, _ in MODULE_DIRS)
             + ": do not edit this page by hand; edit the docstrings and run `make docs`.", "",
             ("Every public function of pgha's execution modules (run on a minion: `salt <target> "
              "<module>.<function>`) and of its state modules (used in SLS files, as requisites, with "
              "`test=True`), each module with its own description first. The runner, on the master, is in "
              "[Runner reference](commands.md); which command to use when is in "
              "[Operator commands](operator-commands.md)."), ""]
    contents = []
    sections: list[str] = []
    for directory, kind in MODULE_DIRS:
        for path in module_files(repo, directory):
            module, body = functions_md(repo, path, 3)
            contents.append(f"- {kind} `{module}` ({path})")
            sections += [f"## {kind} `{module}`", "", f"Source: [{path}](../../{path}).", "", *body]
    lines += contents + [""] + sections
    return "\n".join(lines).rstrip("\n") + "\n"


def outputs(repo: str = REPO) -> dict[str, str]:
    """Every generated file: its path under the repository's root, and its text."""
    return {
        PILLAR_MD: pillar_md(repo),
        PILLAR_EXAMPLE: pillar_example(repo),
        COMMANDS_MD: commands_md(repo),
        MODULES_MD: modules_md(repo),
    }


def write(out_dir: str = REPO, repo: str = REPO) -> list[str]:
    """Write the generated files under ``out_dir``; the paths written, sorted."""
    written = []
    for path, text in sorted(outputs(repo).items()):
        target = os.path.join(out_dir, path)
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        with open(target, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        written.append(path)
    return written
