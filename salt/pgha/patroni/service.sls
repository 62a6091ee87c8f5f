# -*- coding: utf-8 -*-
# vim: ft=sls
# Patroni runs PostgreSQL. A configuration change reloads Patroni (SIGHUP):
# restarting it on the leader would move the leader.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set patroni = mapdata.lookup.patroni %}

include:
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.patroni.config

{{ service('pgha-patroni', mapdata, 'patroni',
           patroni.binary ~ ' ' ~ patroni.config_file,
           patroni.user,
           [{'file': 'pgha-patroni-config-file-managed'}],
           reload=True) }}
