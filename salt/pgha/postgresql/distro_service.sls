# -*- coding: utf-8 -*-
# vim: ft=sls
# The distribution's own PostgreSQL service is stopped and disabled: Patroni
# runs PostgreSQL. Salt's service module picks the host's init system.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set pg = mapdata.lookup.postgresql %}

include:
  - {{ tplroot }}.postgresql.package
{%- if pg.disable_distro_service %}

pgha-postgresql-distro-service-dead:
  service.dead:
    - name: {{ pg.distro_service }}
    - enable: False
    - require:
      - pkg: pgha-postgresql-package-installed
{%- endif %}
