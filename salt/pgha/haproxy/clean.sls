# -*- coding: utf-8 -*-
# vim: ft=sls
# HAProxy off this host (`state.apply pgha.haproxy.clean`), PgBouncer first
# when pgha:pgbouncer:enabled (pgha.pgbouncer.clean): HAProxy stopped and out
# of its service manager, the PostgreSQL nodes' block taken out of the hosts
# file (the rest of it stays), its socket directory and package removed,
# then haproxy.cfg (it holds the stats page's password). haproxy.cfg is a
# conffile of Debian's haproxy, rewritten by the formula: removed once the
# package is.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set haproxy = mapdata.lookup.haproxy %}
{%- set stopped = [{'test': 'pgha-haproxy-service-clean'}] %}
{%- if mapdata.pgbouncer.enabled %}

include:
  # in front of HAProxy: stopped first
  - {{ tplroot }}.pgbouncer.clean
{%- endif %}

{{ clean.service('pgha-haproxy', mapdata, 'haproxy',
                 require=[{'sls': tplroot ~ '.pgbouncer.clean'}] if mapdata.pgbouncer.enabled else []) }}

# What pgha.haproxy.hosts added, markers included.
pgha-haproxy-hosts-entries-clean:
  file.replace:
    - name: {{ clean.path(mapdata, haproxy.hosts_file) }}
    - pattern: '# BEGIN pgha: PostgreSQL nodes, managed by Salt\n(?:.*\n)*?# END pgha\n?'
    - repl: ''
    - bufsize: file
    - backup: False
    - ignore_if_missing: True
    - require: {{ stopped | json }}

pgha-haproxy-socket-dir-clean:
  file.absent:
    - name: {{ clean.path(mapdata, haproxy.socket_dir) }}
    - require: {{ stopped | json }}

{{ clean.packages('pgha-haproxy-package-clean', mapdata, 'haproxy', haproxy.pkgs,
                  stopped + [{'file': 'pgha-haproxy-hosts-entries-clean'}, {'file': 'pgha-haproxy-socket-dir-clean'}],
                  conffiles={'pgha-haproxy-config-file-clean': haproxy.config_file}) }}
