# -*- coding: utf-8 -*-
# vim: ft=sls
# pgBackRest off this host (`state.apply pgha.pgbackrest.clean`, part of
# pgha.backup.clean and pgha.postgresql.clean): on the backup node the
# schedule first (pgha.backup.clean), then the TLS server stopped and out
# of its service manager, its configuration (it holds the repository's
# passphrase), the superuser's password file and (PostgreSQL nodes)
# PostgreSQL's archive command removed, then the package.
# The repository, the spool and the logs stay unless pgha:clean:purge_data.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set pgbackrest = mapdata.lookup.pgbackrest %}
{%- set stopped = [{'test': 'pgha-pgbackrest-service-clean'}] %}

{{ clean.service('pgha-pgbackrest', mapdata, 'pgbackrest',
                 unit_files=[pgbackrest.dropin_file] if mapdata.lookup.service_manager == 'systemd' else []) }}

pgha-pgbackrest-secrets-clean:
  file.absent:
    - names:
      - {{ clean.path(mapdata, pgbackrest.config_file) }}
      - {{ clean.path(mapdata, pgbackrest.pgpass_file) }}
    - require: {{ stopped | json }}
{%- if 'backup' not in mapdata.roles %}

pgha-pgbackrest-archive-push-clean:
  file.absent:
    - name: {{ clean.path(mapdata, pgbackrest.archive_push_file) }}
    - require: {{ stopped | json }}
{%- endif %}

{{ clean.packages('pgha-pgbackrest-package-clean', mapdata, 'pgbackrest', pgbackrest.pkgs,
                  stopped + [{'file': 'pgha-pgbackrest-secrets-clean'}]) }}

{{ clean.data('pgha-pgbackrest-data-clean', mapdata,
              [mapdata.backup.repo_path if 'backup' in mapdata.roles else pgbackrest.spool_dir, pgbackrest.log_dir],
              stopped) }}
