# -*- coding: utf-8 -*-
# vim: ft=sls
# HAProxy in master-worker mode; a configuration change reloads it (USR2),
# established sessions stay.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set haproxy = mapdata.lookup.haproxy %}

include:
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.haproxy.config

{{ service('pgha-haproxy', mapdata, 'haproxy',
           haproxy.binary ~ ' -W -db -f ' ~ haproxy.config_file,
           'root',
           [{'file': 'pgha-haproxy-config-file-managed'}],
           reload=True) }}
