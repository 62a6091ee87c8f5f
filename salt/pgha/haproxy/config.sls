# -*- coding: utf-8 -*-
# vim: ft=sls
# haproxy.cfg, checked with `haproxy -c` before it replaces the running one.
# It holds the stats page's password: mode 0640, group haproxy, never diffed.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set haproxy = mapdata.lookup.haproxy %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.haproxy.package
  # the CA its checks verify Patroni's REST API with (pgha:patroni:restapi_tls)
  - {{ tplroot }}.postgresql.tls

pgha-haproxy-socket-dir-managed:
  file.directory:
    - name: {{ haproxy.socket_dir }}
    - mode: '0750'
    - makedirs: True

pgha-haproxy-config-file-managed:
  file.managed:
    - name: {{ haproxy.config_file }}
    - source: salt://{{ tplroot }}/haproxy/files/haproxy.cfg.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - user: root
    - group: haproxy
    - mode: '0640'
    - makedirs: True
    - dir_mode: '0755'
    - show_changes: False
    - check_cmd: {{ haproxy.binary }} -c -q -f
    - require:
      - pkg: pgha-haproxy-package-installed
      - file: pgha-haproxy-socket-dir-managed
      - test: pgha-postgresql-tls-checked
