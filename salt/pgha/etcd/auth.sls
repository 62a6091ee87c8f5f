# -*- coding: utf-8 -*-
# vim: ft=sls
# etcd's users, Patroni's role and the authentication switch (pillar
# pgha:etcd:auth). Applied by the orchestration on the first etcd node once
# every Patroni carries its etcd credentials; not part of highstate, where
# no order between minions holds.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}

pgha-etcd-auth-configured:
  etcd_cluster.auth_configured:
    - name: {{ mapdata.cluster.scope }}
