# -*- coding: utf-8 -*-
# vim: ft=sls
# Everything this minion's roles need (roles come from pillar pgha:nodes).
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- if mapdata.roles %}
include:
{%-   for role in mapdata.roles %}
  - {{ tplroot }}.{{ role }}
{%-   endfor %}
{#- with monitoring on, every host's exporters (docs/how-to/monitoring.md) #}
{%-   if mapdata.monitor.enabled %}
  - {{ tplroot }}.exporters
{%-   endif %}
{%- else %}
pgha-roles-none:
  test.nop:
    - name: minion {{ mapdata.id }} has no pgha role in pillar pgha:nodes
{%- endif %}
