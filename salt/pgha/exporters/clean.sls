# -*- coding: utf-8 -*-
# vim: ft=sls
# The exporters off this host (`state.apply pgha.exporters.clean`; pgha.clean
# includes it while monitoring is on): the node exporter, postgres_exporter
# and the PgBouncer exporter, those this host runs, stopped and out of their
# service manager, their packages removed, then the formula's files (the
# command lines, the web configuration, the monitoring role's password and
# pgpass files, the launcher). The backup node's textfile stays with the
# node exporter's directory unless pgha:clean:purge_data.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set lookup = mapdata.lookup %}
{%- set done = [] %}
{%- set pkgs = [] %}
{%- for name in mapdata.monitor.exporters_here %}

{{ clean.service('pgha-' ~ name | replace('_', '-'), mapdata, name,
                 [lookup.pgbouncer_exporter.dropin_file] if name == 'pgbouncer_exporter' else []) }}
{%-   do done.append({'test': 'pgha-' ~ name | replace('_', '-') ~ '-service-clean'}) %}
{%-   do pkgs.extend(lookup[name].pkgs) %}
{%- endfor %}

{{ clean.packages('pgha-exporters-package-clean', mapdata, 'exporters', pkgs, done,
                  conffiles={'pgha-node-exporter-env-file-clean': lookup.node_exporter.env_file,
                             'pgha-postgres-exporter-env-file-clean': lookup.postgres_exporter.env_file}) }}

pgha-exporters-files-clean:
  file.absent:
    - names:
      - {{ clean.path(mapdata, lookup.exporter_web.config_file) }}
      - {{ clean.path(mapdata, lookup.postgres_exporter.password_file) }}
      - {{ clean.path(mapdata, lookup.pgbouncer_exporter.pgpass_file) }}
      - {{ clean.path(mapdata, lookup.pgbouncer_exporter.script_file) }}
    - require: {{ done | json }}

{{ clean.data('pgha-exporters-data-clean', mapdata, [lookup.node_exporter.textfile_dir], done) }}
