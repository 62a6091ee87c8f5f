# -*- coding: utf-8 -*-
# vim: ft=sls
# PostgreSQL's TLS material (pillar pgha:postgresql:tls), when enabled. The
# certificates come from the operator's PKI: this checks, before anything
# changes, that each file this host needs is there (pgha_host.check:
# the CA, the node's certificate and key on PostgreSQL nodes; the CA on the
# HAProxy node when PgBouncer runs there) and keeps the key readable by the
# postgres user only, as PostgreSQL demands. Nothing is created.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set tls = mapdata.postgresql.tls %}
{%- if tls.enabled %}
{%-   set host = salt['pgha_host.check'](saltenv=saltenv, patroni=False) %}
{%-   if not host.ready %}
{{ raise("pgha: TLS is enabled but files are missing, nothing was changed:\n  " ~ (host.errors | join('\n  ')) ~ "\nPlace them from your PKI (see docs/how-to/tls.md).") }}
{%-   endif %}
{%-   if 'postgresql' in mapdata.roles %}

pgha-postgresql-tls-key-protected:
  file.managed:
    - name: {{ tls.key_file }}
    - replace: False
    - user: {{ mapdata.lookup.patroni.user }}
    - group: {{ mapdata.lookup.patroni.group }}
    - mode: '0600'
    - show_changes: False
{%-   endif %}
{%- endif %}

pgha-postgresql-tls-checked:
  test.nop:
    - name: {{ ('PostgreSQL TLS on, files present' if tls.enabled else 'PostgreSQL TLS off') | json }}
{%- if tls.enabled and 'postgresql' in mapdata.roles %}
    - require:
      - file: pgha-postgresql-tls-key-protected
{%- endif %}
