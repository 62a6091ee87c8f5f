"""
What the Salt master's file server must never serve: every minion (or anyone
who controls one) can fetch any file it lists (``cp.get_file_str
salt://...``), so a pillar file or a file holding one of the cluster's
secrets there hands every password to every host. The formula's layout
serves its ``salt/`` directory only (docs/how-to/production.md);
this module judges what a master's file server actually lists. Plain
Python; reached as ``__utils__["pgha_fileserver.<function>"]``, and used by
``salt-run pgha.validate`` (the orchestration's first gate).
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

# Files larger than this are not searched for secrets (the formula serves none).
MAX_SEARCHED_BYTES = 4 * 1024 * 1024
# Secret values shorter than this would match by chance; the validation refuses none this short in practice.
MIN_SECRET_LENGTH = 6
# Files named per pillar root in a refusal.
SHOWN = 5


def served(opts: dict) -> list[tuple[str, str, str]]:
    """
    Every file a master's file server (``opts``: the master's options) lists, in every environment:
    (saltenv, name, path on the master). Read with a cache of its own: the master's cached lists stay as they are.
    """
    import salt.fileserver  # pylint: disable=import-outside-toplevel  # only where the master runs it

    with tempfile.TemporaryDirectory(prefix="pgha-fileserver-") as cache:
        server = salt.fileserver.Fileserver(dict(opts, cachedir=cache))
        return [(saltenv, name, server.find_file(name, saltenv).get("path") or "")
                for saltenv in server.envs() for name in server.file_list({"saltenv": saltenv})]


def _inside(path: str, root: str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(root)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _pillar_dirs(pillar_roots: Any) -> list[str]:
    """Every directory of a master's ``pillar_roots`` (a map of environments to lists)."""
    roots = pillar_roots if isinstance(pillar_roots, dict) else {}
    return sorted({path for paths in roots.values() for path in (paths or []) if isinstance(path, str)})


def _holds(path: str, values: dict[str, bytes]) -> list[str]:
    """The names of the secrets whose value the file at ``path`` contains."""
    try:
        if os.path.getsize(path) > MAX_SEARCHED_BYTES:
            return []
        with open(path, "rb") as handle:
            content = handle.read()
    except OSError:
        return []
    return sorted(name for name, value in values.items() if value in content)


def problems(served: list[tuple[str, str, str]], pillar_roots: Any, secrets: Any) -> list[str]:
    """
    What is wrong with the files a master's file server lists: ``served``
    holds (saltenv, name under salt://, path on the master) for each;
    ``pillar_roots`` is the master's option; ``secrets`` the cluster's
    ``pgha:secrets``. One line per file under a pillar root, and per file
    that holds a secret's value (named by its key, never shown), each naming
    the file. Empty when the layout is safe.
    """
    pillars = _pillar_dirs(pillar_roots)
    values = {name: str(value).encode() for name, value in (secrets or {}).items()
              if isinstance(value, str) and len(value) >= MIN_SECRET_LENGTH}
    under: dict[str, list[str]] = {}
    found = []
    for saltenv, name, path in served:
        where = f"salt://{name}" + (f" (saltenv {saltenv})" if saltenv != "base" else "")
        root = next((root for root in pillars if path and _inside(path, root)), None)
        holding = _holds(path, values) if path else []
        if root:
            # those holding a secret first
            files = under.setdefault(root, [])
            files.insert(0 if holding else len(files), f"{where} ({path}{', holds secrets' if holding else ''})")
        elif holding:
            found.append(f"the master's file server serves {where} ({path}), which holds the value of "
                         f"{', '.join('pgha:secrets:' + key for key in holding)}: every minion can read it; "
                         "move the file out of file_roots")
    for root, files in sorted(under.items()):
        shown = ", ".join(files[:SHOWN]) + (f" and {len(files) - SHOWN} more" if len(files) > SHOWN else "")
        found.insert(0, f"the master's file server serves {len(files)} file(s) under the pillar root {root}: "
                        f"{shown}; every minion can read the pillar through it: serve only the formula's salt/ "
                        "directory (file_roots; docs/how-to/production.md)")
    return found
