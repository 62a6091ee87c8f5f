# -*- coding: utf-8 -*-
# vim: ft=sls
# A member that starts from an empty data directory bootstraps a new etcd
# (a new cluster, or one rebuilt after its data was lost): its access control
# (pgha:etcd:auth) is applied as soon as it answers, in the same state run,
# so that the new etcd does not stay open to anonymous clients until the
# orchestration's auth stage. Patroni's configuration carries its etcd
# credentials from its first render, so switching authentication on here
# costs a running Patroni nothing. A member with data is left to the
# orchestration's pgha-orch-etcd-auth stage (turning authentication on for
# an existing cluster needs every Patroni given its credentials first).
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- if mapdata.etcd.auth.enabled and not salt['etcd_cluster.local']()['bootstrapped'] %}

include:
  - {{ tplroot }}.etcd.service

pgha-etcd-bootstrap-auth-configured:
  etcd_cluster.auth_configured:
    - name: {{ mapdata.cluster.scope }}
    # a new cluster of several members answers once a quorum of them runs
    - retry:
        attempts: 40
        interval: 3
    - require:
      - sls: {{ tplroot }}.etcd.service
{%- endif %}
