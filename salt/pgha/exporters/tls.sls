# -*- coding: utf-8 -*-
# vim: ft=sls
# https for the node exporter and postgres_exporter (monitor:tls): their
# web configuration names this host's certificate and key, from the
# operator's PKI, checked before anything changes (pgha_host.check); the
# key readable by the exporters' user only. Nothing when monitor:tls is off.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set tls = mapdata.monitor.tls %}
{%- set web = mapdata.lookup.exporter_web %}
{%- if tls.enabled %}
{%-   set host = salt['pgha_host.check'](saltenv=saltenv, patroni=False) %}
{%-   if not host.ready %}
{{ raise("pgha: TLS is enabled but files are missing, nothing was changed:\n  " ~ (host.errors | join('\n  ')) ~ "\nPlace them from your PKI (see docs/how-to/tls.md).") }}
{%-   endif %}

pgha-exporters-tls-key-protected:
  file.managed:
    - name: {{ tls.key_file }}
    - replace: False
    - user: {{ web.user }}
    - group: {{ web.user }}
    - mode: '0600'
    - show_changes: False

pgha-exporters-web-config-file-managed:
  file.managed:
    - name: {{ web.config_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): the exporters' https (monitor:tls).
        tls_server_config:
          cert_file: {{ tls.cert_file }}
          key_file: {{ tls.key_file }}
    - require:
      - file: pgha-exporters-tls-key-protected
{%- endif %}

pgha-exporters-tls-checked:
  test.nop:
    - name: {{ ('exporters over https, files present' if tls.enabled else 'exporters over http') | json }}
{%- if tls.enabled %}
    - require:
      - file: pgha-exporters-web-config-file-managed
{%- endif %}
