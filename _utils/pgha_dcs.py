"""
Patroni's dynamic configuration (the settings it keeps in the DCS): what a
``PATCH /config`` with some settings changes, predicted the way Patroni
patches, so that ``patroni.edit_config`` and the ``patroni.dynamic_config``
state can say ``{old, new}`` before they write. Plain Python; reached as
``__utils__["pgha_dcs.<function>"]``.
"""

from __future__ import annotations

import copy
from typing import Any


def config_diff(current: dict, settings: dict) -> dict:
    """
    What PATCH /config with ``settings`` changes in ``current``, the way
    Patroni patches (a None value removes the key; scalars compare as text):
    ``{"old": ..., "new": ...}`` holding the changed keys only, nested as in
    ``settings`` (None for a key absent on that side).
    """
    old: dict = {}
    new: dict = {}
    for key, value in settings.items():
        present = isinstance(current, dict) and key in current
        have = current.get(key) if present else None
        if value is None:
            if have is not None:
                old[key], new[key] = copy.deepcopy(have), None
        elif isinstance(value, dict) and isinstance(have, dict):
            nested = config_diff(have, value)
            if nested["old"] or nested["new"]:
                old[key], new[key] = nested["old"], nested["new"]
        elif not present or isinstance(value, dict) or str(have) != str(value):
            old[key], new[key] = copy.deepcopy(have), copy.deepcopy(value)
    return {"old": old, "new": new}


def pick(config: Any, template: dict) -> dict:
    """The values of ``config`` at the keys of ``template`` (nested), None where absent."""
    picked = {}
    for key, value in template.items():
        have = config.get(key) if isinstance(config, dict) else None
        if isinstance(value, dict) and isinstance(have, dict):
            picked[key] = pick(have, value)
        else:
            picked[key] = copy.deepcopy(have)
    return picked


def is_true(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "on", "yes", "1")
