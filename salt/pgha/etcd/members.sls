# -*- coding: utf-8 -*-
# vim: ft=sls
# What the etcd cluster records of each member matches pillar: its peer URL
# (http or https by pgha:etcd:tls). Applied by the orchestration on the
# first etcd node once etcd is healthy; it never adds or removes a member.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- for node_id in mapdata.etcd_nodes %}

pgha-etcd-member-{{ node_id }}-peer-url:
  etcd_cluster.member_peer_url:
    - name: {{ node_id }}
    - peer_url: {{ mapdata.etcd.peer_urls[node_id] }}
{%- endfor %}
