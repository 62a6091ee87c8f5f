# -*- coding: utf-8 -*-
# vim: ft=sls
# PgBouncer off this host (`state.apply pgha.pgbouncer.clean`; pgha.haproxy.clean
# includes it while pgha:pgbouncer:enabled): stopped and out of its service
# manager, its packages removed, then pgbouncer.ini and the auth file (it
# holds the pooler's password). Both are conffiles of Debian's pgbouncer,
# rewritten by the formula: removed once the package is. Its socket
# directory is PostgreSQL's (/var/run/postgresql) and stays.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set pooler = mapdata.lookup.pgbouncer %}

{{ clean.service('pgha-pgbouncer', mapdata, 'pgbouncer') }}

{{ clean.packages('pgha-pgbouncer-package-clean', mapdata, 'pgbouncer', pooler.pkgs,
                  [{'test': 'pgha-pgbouncer-service-clean'}],
                  conffiles={'pgha-pgbouncer-config-file-clean': pooler.config_file,
                             'pgha-pgbouncer-auth-file-clean': pooler.auth_file}) }}
