# -*- coding: utf-8 -*-
# vim: ft=sls
# A PostgreSQL node off this host (`state.apply pgha.postgresql.clean`):
# Patroni first (pgha.patroni.clean: stopped, its configuration and its
# installation removed), pgBackRest when the cluster has a backup node
# (pgha.pgbackrest.clean), then PostgreSQL's packages and, when the formula
# added it, the PGDG apt repository. The distribution's own PostgreSQL
# service stays stopped and disabled (pgha.postgresql.distro_service); the
# TLS files are the operator's PKI's and stay. The data directory stays
# unless pgha:clean:purge_data.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set pg = mapdata.lookup.postgresql %}
{%- set repo = pg.pgdg_repo %}

include:
  - {{ tplroot }}.patroni.clean
{%- if mapdata.backup.enabled %}
  - {{ tplroot }}.pgbackrest.clean
{%- endif %}

{{ clean.packages('pgha-postgresql-package-clean', mapdata, 'postgresql', pg.pkgs,
                  [{'sls': tplroot ~ '.patroni.clean'}]) }}
{%- if repo.enabled and not mapdata.lookup.root %}

pgha-postgresql-repo-clean:
  pkgrepo.absent:
    - name: {{ repo.name }}
    - require:
      - pkg: pgha-postgresql-package-clean

pgha-postgresql-repo-key-clean:
  file.absent:
    - name: {{ clean.path(mapdata, repo.keyring) }}
    - require:
      - pkgrepo: pgha-postgresql-repo-clean
{%- endif %}
