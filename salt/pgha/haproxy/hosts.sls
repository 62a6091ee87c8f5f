# -*- coding: utf-8 -*-
# vim: ft=sls
# The PostgreSQL nodes by name in the hosts file, as the seed does.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}

include:
  - {{ tplroot }}.root
{%- set hosts_file = mapdata.lookup.haproxy.hosts_file %}

pgha-haproxy-hosts-file-present:
  file.managed:
    - name: {{ hosts_file }}
    - replace: False
    - mode: '0644'
    - makedirs: True
    - dir_mode: '0755'

pgha-haproxy-hosts-entries-managed:
  file.blockreplace:
    - name: {{ hosts_file }}
    - marker_start: '# BEGIN pgha: PostgreSQL nodes, managed by Salt'
    - marker_end: '# END pgha'
    - content: |
{%- for node_id in mapdata.pg_nodes %}
        {{ mapdata.nodes[node_id].address }} {{ node_id }}
{%- endfor %}
    - append_if_not_found: True
    - require:
      - file: pgha-haproxy-hosts-file-present
