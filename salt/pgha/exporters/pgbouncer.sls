# -*- coding: utf-8 -*-
# vim: ft=sls
# The PgBouncer exporter on the pooler's node (Debian's package's collectors,
# run by the formula's script: files/pgha-pgbouncer-exporter.py says why): PgBouncer's console through
# its Unix socket as users:monitor, one of PgBouncer's stats_users (SHOW
# only), with a pgpass file only the exporter's user reads (host `*`: libpq
# matches a socket directory other than its default by its path only).
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set be = mapdata.lookup.pgbouncer_exporter %}
{%- set environment = {
      'PGPASSFILE': be.pgpass_file,
      'PGBOUNCER_HOST': mapdata.lookup.pgbouncer.socket_dir,
      'PGBOUNCER_PORT': mapdata.pgbouncer.port,
      'PGBOUNCER_USER': mapdata.users.monitor,
      'HOST': mapdata.node.address,
      'PORT': mapdata.monitor.ports.pgbouncer_exporter} %}
{%- set command = be.script_file %}
{%- set require_ids = [] %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.supervisord

pgha-pgbouncer-exporter-package-installed:
  pkg.installed:
    - pkgs: {{ be.pkgs | json }}

pgha-pgbouncer-exporter-script-file-managed:
  file.managed:
    - name: {{ be.script_file }}
    - source: salt://{{ tplroot }}/exporters/files/pgha-pgbouncer-exporter.py
    - mode: '0755'
    - makedirs: True
    - require:
      - pkg: pgha-pgbouncer-exporter-package-installed

pgha-pgbouncer-exporter-pgpass-file-managed:
  file.managed:
    - name: {{ be.pgpass_file }}
    - contents: {{ ('*:' ~ mapdata.pgbouncer.port ~ ':pgbouncer:' ~ mapdata.users.monitor ~ ':'
                    ~ mapdata.secrets.monitor_password | replace('\\', '\\\\') | replace(':', '\\:')) | json }}
    - user: {{ be.user }}
    - group: {{ be.user }}
    - mode: '0600'
    - makedirs: True
    - show_changes: False
    - require:
      - pkg: pgha-pgbouncer-exporter-package-installed
{%- if mapdata.lookup.service_manager == 'systemd' %}
{%-   do require_ids.append({'cmd': 'pgha-pgbouncer-exporter-dropin-daemon-reloaded'}) %}

pgha-pgbouncer-exporter-dropin-file-managed:
  file.managed:
    - name: {{ be.dropin_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): the exporter without its failing collector (see the script).
        [Service]
{%-   for name, value in environment | dictsort %}
        Environment={{ name }}={{ value }}
{%-   endfor %}
        ExecStart=
        ExecStart={{ command }}

pgha-pgbouncer-exporter-dropin-daemon-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: pgha-pgbouncer-exporter-dropin-file-managed
{%- endif %}

{{ service('pgha-pgbouncer-exporter', mapdata, 'pgbouncer_exporter', command, be.user,
           [{'file': 'pgha-pgbouncer-exporter-script-file-managed'},
            {'file': 'pgha-pgbouncer-exporter-pgpass-file-managed'}],
           require_ids=require_ids, environment=environment) }}
