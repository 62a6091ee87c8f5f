# -*- coding: utf-8 -*-
# vim: ft=sls
# etcd's TLS material (pillar pgha:etcd:tls), when enabled. The certificates
# come from the operator's PKI: this checks, before anything changes, that
# each file this host needs is there (pgha_host.check: the CA on etcd
# and PostgreSQL nodes, the member certificate and key on etcd nodes) and
# keeps the key readable by etcd only. Nothing is created.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set tls = mapdata.etcd.tls %}
{%- if tls.enabled %}
{%-   set host = salt['pgha_host.check'](saltenv=saltenv, patroni=False) %}
{%-   if not host.ready %}
{{ raise("pgha: TLS is enabled but files are missing, nothing was changed:\n  " ~ (host.errors | join('\n  ')) ~ "\nPlace them from your PKI (see docs/how-to/tls.md).") }}
{%-   endif %}
{%-   if 'etcd' in mapdata.roles %}

pgha-etcd-tls-key-protected:
  file.managed:
    - name: {{ tls.key_file }}
    - replace: False
    - user: {{ mapdata.lookup.etcd.user }}
    - group: {{ mapdata.lookup.etcd.user }}
    - mode: '0600'
    - show_changes: False
{%-   endif %}
{%- endif %}

pgha-etcd-tls-checked:
  test.nop:
    - name: {{ ('etcd TLS on, files present' if tls.enabled else 'etcd TLS off') | json }}
{%- if tls.enabled and 'etcd' in mapdata.roles %}
    - require:
      - file: pgha-etcd-tls-key-protected
{%- endif %}
