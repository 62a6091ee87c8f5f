# -*- coding: utf-8 -*-
# vim: ft=sls
# The exporters this host runs when monitoring is on (a node of role
# monitor, or monitor:exporters): the node exporter on every host,
# postgres_exporter on a PostgreSQL node, the PgBouncer exporter on the
# pooler's node; HAProxy's own endpoint is in haproxy.cfg, Patroni's and
# etcd's /metrics are theirs. docs/how-to/monitoring.md.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- if mapdata.monitor.enabled %}
include:
{%-   for name in mapdata.monitor.exporters_here %}
  - .{{ name.split('_')[0] }}
{%-   endfor %}
{%- else %}
pgha-exporters-off:
  test.nop:
    - name: monitoring is off (no node has the role monitor; monitor:exporters not true)
{%- endif %}
