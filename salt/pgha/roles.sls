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
{%- else %}
pgha-roles-none:
  test.nop:
    - name: minion {{ mapdata.id }} has no pgha role in pillar pgha:nodes
{%- endif %}
