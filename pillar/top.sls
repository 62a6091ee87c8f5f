# -*- coding: utf-8 -*-
# vim: ft=sls
# Real hosts: every minion (and the master, for the orchestration) sees the
# whole cluster; the secrets come from a file kept out of git.
base:
  '*':
    - pgha.production
    - pgha_secrets
    - ignore_missing: True
