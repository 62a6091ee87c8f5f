# -*- coding: utf-8 -*-
# vim: ft=sls
# Highstate: every minion gets the states of its pgha roles.
base:
  '*':
    - pgha.roles
