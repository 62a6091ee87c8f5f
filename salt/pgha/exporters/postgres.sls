# -*- coding: utf-8 -*-
# vim: ft=sls
# postgres_exporter on a PostgreSQL node, logging in to its own PostgreSQL
# as users:monitor (pg_monitor and nothing more; made by the orchestration
# with the probe role), over TLS when PostgreSQL has it; the password in a
# file only the exporter's user reads.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set pe = mapdata.lookup.postgres_exporter %}
{%- set tls = mapdata.postgresql.tls %}
{%- set query = ('?sslmode=verify-full&sslrootcert=' ~ tls.ca_file) if tls.enabled else '?sslmode=prefer' %}
{%- set environment = {
      'DATA_SOURCE_URI': mapdata.node.address ~ ':' ~ mapdata.postgresql.port ~ '/postgres' ~ query,
      'DATA_SOURCE_USER': mapdata.users.monitor,
      'DATA_SOURCE_PASS_FILE': pe.password_file} %}
{%- set args = '--web.listen-address=' ~ mapdata.node.address ~ ':' ~ mapdata.monitor.ports.postgres_exporter
      ~ ((' --web.config.file=' ~ mapdata.lookup.exporter_web.config_file) if mapdata.monitor.tls.enabled else '') %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.exporters.tls

pgha-postgres-exporter-package-installed:
  pkg.installed:
    - pkgs: {{ pe.pkgs | json }}

pgha-postgres-exporter-password-file-managed:
  file.managed:
    - name: {{ pe.password_file }}
    - contents: {{ mapdata.secrets.monitor_password | json }}
    - user: {{ pe.user }}
    - group: {{ pe.user }}
    - mode: '0600'
    - makedirs: True
    - show_changes: False
    - require:
      - pkg: pgha-postgres-exporter-package-installed

pgha-postgres-exporter-env-file-managed:
  file.managed:
    - name: {{ pe.env_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): postgres_exporter's settings (Debian's unit reads them); no password here.
{%- for name, value in environment | dictsort %}
        {{ name }}='{{ value }}'
{%- endfor %}
        ARGS="{{ args }}"
    - require:
      - pkg: pgha-postgres-exporter-package-installed

{{ service('pgha-postgres-exporter', mapdata, 'postgres_exporter', pe.binary ~ ' ' ~ args, pe.user,
           [{'file': 'pgha-postgres-exporter-env-file-managed'}, {'test': 'pgha-exporters-tls-checked'}, {'file': 'pgha-postgres-exporter-password-file-managed'}],
           environment=environment) }}
