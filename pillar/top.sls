# -*- coding: utf-8 -*-
# vim: ft=sls
# Real hosts: every minion (and the master) sees the cluster's description;
# each minion gets only the secrets its roles use (pillar/pgha/secrets/<role>.sls,
# taken from pillar/pgha_secrets.yaml, which git ignores), the master all of
# them. The roles come from pgha:nodes in pgha/production.sls. README,
# "Secrets by role".
{%- import_yaml 'pgha/production.sls' as cluster %}
{%- set nodes = cluster.pgha.nodes %}
base:
  '*':
    - pgha.production
{%- for role in ('postgresql', 'etcd', 'haproxy') %}
{%-   set ids = [] %}
{%-   for node_id, node in nodes | dictsort if role in node.roles %}
{%-     do ids.append(node_id) %}
{%-   endfor %}
{%-   if ids %}
  '{{ ids | join(',') }}':
    - match: list
    - pgha.secrets.{{ role }}
{%-   endif %}
{%- endfor %}
  # The master's own pillar id: <host>_master unless its configuration sets `id`.
  '*_master':
    - pgha.secrets.all
