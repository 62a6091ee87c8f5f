# -*- coding: utf-8 -*-
# vim: ft=sls
# pgBackRest's TLS server (`pgbackrest server`): on the backup node it
# serves the repository to the PostgreSQL nodes (archive-push, restores),
# on a PostgreSQL node its data directory to the backup node (backups,
# checks). A configuration change restarts it: it holds no session a
# client would miss (a command in flight retries).
# systemd: the package's unit, with a drop-in for this configuration, the
# user and PGPASSFILE.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set pgbackrest = mapdata.lookup.pgbackrest %}
{%- set on_backup = 'backup' in mapdata.roles %}
{%- set user = pgbackrest.repo_user if on_backup else mapdata.lookup.patroni.user %}
{%- set environment = {} if on_backup else {'PGPASSFILE': pgbackrest.pgpass_file} %}
{%- set command = pgbackrest.binary ~ ' --config=' ~ pgbackrest.config_file ~ ' server' %}
{%- set require_ids = [] %}

include:
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.pgbackrest.config
{%- if mapdata.lookup.service_manager == 'systemd' %}
{%-   do require_ids.append({'cmd': 'pgha-pgbackrest-dropin-daemon-reloaded'}) %}

pgha-pgbackrest-dropin-file-managed:
  file.managed:
    - name: {{ pgbackrest.dropin_file }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): pgBackRest's TLS server with pgha's configuration.
        [Service]
        User={{ user }}
        Group={{ user }}
{%-   for name, value in environment | dictsort %}
        Environment={{ name }}={{ value }}
{%-   endfor %}
        ExecStart=
        ExecStart={{ command }}

pgha-pgbackrest-dropin-daemon-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: pgha-pgbackrest-dropin-file-managed
{%- endif %}

{{ service('pgha-pgbackrest', mapdata, 'pgbackrest', command, user,
           [{'file': 'pgha-pgbackrest-config-file-managed'}],
           require_ids=require_ids, environment=environment) }}
