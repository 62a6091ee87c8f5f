"""Fixtures shared by pgha's unit tests."""

from __future__ import annotations

import copy

import pytest
from pgha_test_helpers import TEST_SECRETS, read_pillar


@pytest.fixture
def production_pillar() -> dict:
    """pillar/pgha/production.sls plus the test secrets: a complete, valid pillar."""
    pillar = read_pillar("production")
    pillar["pgha"]["secrets"] = copy.deepcopy(TEST_SECRETS)
    return pillar


@pytest.fixture
def lab_pillar() -> dict:
    """pillar/pgha/lab.sls plus the test secrets and a per-minion root, as `make lab` sets."""
    pillar = read_pillar("lab")
    pillar["pgha"]["secrets"] = copy.deepcopy(TEST_SECRETS)
    pillar["pgha"].setdefault("lookup", {})["root"] = "/srv/pghalab/hosts/{id}"
    return pillar
