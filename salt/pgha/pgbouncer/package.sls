# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}

pgha-pgbouncer-package-installed:
  pkg.installed:
    - pkgs: {{ mapdata.lookup.pgbouncer.pkgs | json }}
