# -*- coding: utf-8 -*-
# vim: ft=sls
# When the formula manages a host under a root (pillar pgha:lookup:root, as the
# lab does), that root's standard directories exist, owned by root, mode 0755,
# before any role's directory is made below them. Nothing on real hosts.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set root = mapdata.lookup.root %}
{%- if root %}

pgha-root-dirs-managed:
  file.directory:
    - names:
{%-   for sub in ['', '/etc', '/etc/default', '/var', '/var/lib', '/var/log', '/var/run', '/run'] %}
      - {{ root ~ sub }}
{%-   endfor %}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True
{%- endif %}
