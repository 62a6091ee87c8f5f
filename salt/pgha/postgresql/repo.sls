# -*- coding: utf-8 -*-
# vim: ft=sls
# The PGDG apt repository, when pgha:lookup:postgresql:pgdg_repo:enabled.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set repo = mapdata.lookup.postgresql.pgdg_repo %}
{%- if repo.enabled %}

pgha-postgresql-repo-key-managed:
  file.managed:
    - name: {{ repo.keyring }}
    - source: {{ repo.key_url }}
    - skip_verify: True
    - mode: '0644'

pgha-postgresql-repo-managed:
  pkgrepo.managed:
    - name: {{ repo.name }}
    - file: {{ repo.file }}
    - require:
      - file: pgha-postgresql-repo-key-managed
    - require_in:
      - pkg: pgha-postgresql-package-installed
{%- endif %}
