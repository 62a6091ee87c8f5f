# -*- coding: utf-8 -*-
# vim: ft=sls
# Real hosts: every minion (and the master) sees the cluster's description;
# each minion gets only the secrets its roles use (pillar/pgha/secrets/<role>.sls,
# taken from pillar/pgha_secrets.yaml, which git ignores), the master all of
# them. The roles come from pgha:nodes in the files of `stack`, later ones
# overriding. See docs/how-to/secrets.md.
# The seed's topology (one etcd member):   ['pgha/production.sls']
# Three etcd members (docs/tutorials/topologies.md): ['pgha/production.sls', 'pgha/production_ha.sls']
{%- set stack = ['pgha/production.sls'] %}
{%- set nodes = {} %}
{%- for file in stack %}
{%-   import_yaml file as layer %}
{%-   for node_id, node in layer.pgha.nodes | dictsort %}
{%-     do nodes.update({node_id: dict(nodes.get(node_id, {}), **node)}) %}
{%-   endfor %}
{%- endfor %}
base:
  '*':
{%- for file in stack %}
    - {{ file[:-4] | replace('/', '.') }}
{%- endfor %}
{%- for role in ('postgresql', 'etcd', 'haproxy', 'backup') %}
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
