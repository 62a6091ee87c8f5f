# -*- coding: utf-8 -*-
# vim: ft=sls
# The formula off this minion (`state.apply pgha.clean`): the clean states of
# each of its roles (pillar pgha:nodes), the front first (HAProxy, with
# PgBouncer when enabled), then PostgreSQL (Patroni) and etcd, the backup
# node's schedule and pgBackRest, Prometheus and Alertmanager, the
# exporters, and this host's supervisord last. What a role no longer in
# pillar left behind is cleaned by pgha.<component>.clean (etcd, postgresql,
# patroni, haproxy, pgbouncer, pgbackrest, backup, monitor, exporters,
# supervisord). Data directories stay unless
# pgha:clean:purge_data (docs/how-to/clean.md).
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set roles = ['haproxy', 'postgresql', 'etcd', 'backup', 'monitor'] | select('in', mapdata.roles) | list %}
{%- if roles %}
include:
{%-   for role in roles %}
  - {{ tplroot }}.{{ role }}.clean
{%-   endfor %}
{%-   if mapdata.monitor.enabled %}
  - {{ tplroot }}.exporters.clean
{%-   endif %}
  - {{ tplroot }}.supervisord.clean
{%- else %}

pgha-clean-no-role:
  test.nop:
    - name: {{ ('minion ' ~ mapdata.id ~ ' has no pgha role in pillar pgha:nodes: apply pgha.<component>.clean for what it ran') | json }}
{%- endif %}
