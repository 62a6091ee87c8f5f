"""
The pgha model on a minion: the formula's parameters
(``salt://pgha/parameters/defaults.yaml``, then ``os_family/<os_family>.yaml``)
merged with pillar ``pgha``, checked and derived by ``_utils/pgha_model.py``
(its one ``build``), as this minion sees it.

The state files read it through ``map.jinja`` (``mapdata``), the other pgha
execution modules through ``mapdata`` too, and the orchestration's Jinja on
the master (which loads this module from the formula's checkout). An
invalid pillar is refused with every wrong key named by its full path,
before anything changes. What a host needs beyond the pillar is checked by
``pgha_host``. Needs nothing but Salt itself.
"""

from __future__ import annotations

import copy
import json
import logging

import salt.utils.yaml
from salt.exceptions import CommandExecutionError

log = logging.getLogger(__name__)

__virtualname__ = "pgha_config"

DEFAULTS = "salt://pgha/parameters/defaults.yaml"
OS_FAMILY = "salt://pgha/parameters/os_family/{}.yaml"


def __virtual__():
    return __virtualname__


def _load_yaml(path: str, saltenv: str, required: bool) -> dict:
    cache_key = f"pgha_config.yaml.{saltenv}.{path}"
    if cache_key not in __context__:
        text = __salt__["cp.get_file_str"](path, saltenv=saltenv)
        if not text:
            if required:
                raise CommandExecutionError(f"pgha: cannot read {path}: is the formula in the master's file_roots?")
            text = "{}"
        __context__[cache_key] = salt.utils.yaml.safe_load(text) or {}
    return copy.deepcopy(__context__[cache_key])


def defaults(saltenv: str = "base") -> dict:
    """
    The formula's defaults: ``parameters/defaults.yaml`` merged with the file
    of this minion's os_family.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_config.defaults
    """
    family = _load_yaml(OS_FAMILY.format(__grains__.get("os_family", "")), saltenv, required=False)
    return __utils__["pgha_model.merge"](_load_yaml(DEFAULTS, saltenv, required=True), family)


def _given(pillar: dict | None) -> dict:
    """Pillar ``pgha`` as this minion sees it, merged with an override (``{"pgha": ...}`` or its inside)."""
    given = __pillar__.get("pgha") if hasattr(__pillar__, "get") else None
    given = {} if given is None else given
    if pillar:
        override = pillar.get("pgha", pillar) if isinstance(pillar, dict) else {}
        given = __utils__["pgha_model.merge"](dict(given), override) if isinstance(given, dict) else given
    return given


def _minion_id() -> str:
    return __grains__.get("id") or __opts__.get("id")


def validate(pillar: dict | None = None, saltenv: str = "base") -> dict:
    """
    Check the ``pgha`` pillar this minion sees, optionally merged with a
    pillar override, and list every problem found. Of the secrets, those of
    this minion's roles only: it is given no other (``salt-run
    pgha.validate`` checks them all, on the master).

    Returns ``{"valid": bool, "errors": [...]}``; the exit code is non-zero
    when the pillar is not valid.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_config.validate
        salt postgres01 pgha_config.validate pillar='{"pgha": {"patroni": {"ttl": 10}}}'
    """
    errors = __utils__["pgha_model.check"](defaults(saltenv), _given(pillar), _minion_id())
    if errors:
        __context__["retcode"] = 1
    return {"valid": not errors, "errors": errors}


def mapdata(show_secrets: bool = False, saltenv: str = "base", pillar: dict | None = None) -> dict:
    """
    The cluster as this minion sees it (``pgha_model.Cluster.as_map``): its
    roles, its paths (under ``lookup:root``), every node, the bootstrap
    leader and the replicas, the etcd endpoints, the Patroni REST API URLs,
    HAProxy's listeners and every derived default. Secrets are masked unless
    ``show_secrets=True`` (the state files ask for them; nothing else should).

    Raises an error naming every wrong pillar key when the pillar is invalid.

    CLI Example:

    .. code-block:: bash

        salt postgres01 pgha_config.mapdata
    """
    # Built once per run (a highstate renders a dozen templates that each ask): __context__ lives as long as the job.
    key = f"pgha_config.model.{saltenv}.{json.dumps(pillar, sort_keys=True, default=str)}"
    if key not in __context__:
        given = _given(pillar)
        try:
            __context__[key] = __utils__["pgha_model.build"](defaults(saltenv), given, _minion_id())
        except ValueError as exc:
            raise CommandExecutionError(str(exc)) from None
    return __context__[key].as_map(show_secrets)
