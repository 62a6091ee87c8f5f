# -*- coding: utf-8 -*-
# vim: ft=sls
# Prometheus: its configuration and the alert rules, each checked by
# promtool before it is written; a change reloads it (SIGHUP), a changed
# command line restarts it.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set prom = mapdata.lookup.prometheus %}
{%- set m = mapdata.monitor %}
{%- set args = ' '.join([
      '--config.file=' ~ prom.config_file,
      '--storage.tsdb.path=' ~ prom.data_dir,
      '--storage.tsdb.retention.time=' ~ m.retention,
      '--web.listen-address=' ~ m.address ~ ':' ~ m.ports.prometheus,
      '--web.external-url=' ~ m.prometheus_url ~ '/']) %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.supervisord

pgha-prometheus-package-installed:
  pkg.installed:
    - pkgs: {{ prom.pkgs | json }}

pgha-prometheus-dirs-managed:
  file.directory:
    - names:
      - {{ prom.data_dir }}:
        - user: {{ prom.user }}
        - group: {{ prom.user }}
        - mode: '0750'
      - {{ salt['file.dirname'](prom.config_file) }}:
        - user: root
        - group: root
        - mode: '0755'
    - makedirs: True
    - require:
      - pkg: pgha-prometheus-package-installed

pgha-prometheus-rules-file-managed:
  file.managed:
    - name: {{ prom.rules_file }}
    - source: salt://{{ tplroot }}/monitor/files/pgha.rules.yml.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - user: root
    - group: {{ prom.user }}
    - mode: '0644'
    - check_cmd: {{ prom.promtool }} check rules
    - tmp_ext: .yml
    - require:
      - file: pgha-prometheus-dirs-managed

pgha-prometheus-config-file-managed:
  file.managed:
    - name: {{ prom.config_file }}
    - source: salt://{{ tplroot }}/monitor/files/prometheus.yml.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - user: root
    - group: {{ prom.user }}
    - mode: '0640'
    - check_cmd: {{ prom.promtool }} check config --syntax-only
    - tmp_ext: .yml
    - require:
      - file: pgha-prometheus-rules-file-managed

pgha-prometheus-env-file-managed:
  file.managed:
    - name: {{ prom.env_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): Prometheus's command line (Debian's unit reads ARGS).
        ARGS="{{ args }}"
    - require:
      - pkg: pgha-prometheus-package-installed

{{ service('pgha-prometheus', mapdata, 'prometheus', prom.binary ~ ' ' ~ args, prom.user,
           [{'file': 'pgha-prometheus-config-file-managed'}, {'file': 'pgha-prometheus-rules-file-managed'}],
           reload=True, require_ids=[{'file': 'pgha-prometheus-env-file-managed'}]) }}
