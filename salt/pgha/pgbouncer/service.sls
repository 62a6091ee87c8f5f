# -*- coding: utf-8 -*-
# vim: ft=sls
# PgBouncer as its own service; a change of its configuration reloads it
# (SIGHUP): clients stay connected.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set pooler = mapdata.lookup.pgbouncer %}

include:
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.pgbouncer.config

{{ service('pgha-pgbouncer', mapdata, 'pgbouncer',
           pooler.binary ~ ' ' ~ pooler.config_file,
           pooler.user,
           [{'file': 'pgha-pgbouncer-config-file-managed'}, {'file': 'pgha-pgbouncer-auth-file-managed'}],
           reload=True) }}
