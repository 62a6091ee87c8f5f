# -*- coding: utf-8 -*-
# vim: ft=sls
{%- from tpldir.split('/')[0] ~ "/map.jinja" import mapdata with context %}
include:
  - .package
  - .hosts
  - .config
  - .service
{%- if mapdata.pgbouncer.enabled %}
  - {{ tpldir.split('/')[0] }}.pgbouncer
{%- endif %}
