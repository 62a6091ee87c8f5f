# -*- coding: utf-8 -*-
# vim: ft=sls
# Patroni off this host (`state.apply pgha.patroni.clean`; pgha.postgresql.clean
# includes it): Patroni stopped (it stops PostgreSQL) and out of its service
# manager (under systemd with install: pip, the formula's unit removed), its
# configuration, bootstrap script and pgpass removed, the watchdog's udev
# rule and boot-time module file removed (the module stays loaded until the
# next boot), then Patroni itself: the virtualenv (install: pip) or the
# packages (install: package). A member still in the cluster should be
# retired first (remove it from pgha:nodes and run the orchestration).
# PostgreSQL's data directory and Patroni's logs stay unless
# pgha:clean:purge_data.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set patroni = mapdata.lookup.patroni %}
{%- set systemd = mapdata.lookup.service_manager == 'systemd' %}
{%- set stopped = [{'test': 'pgha-patroni-service-clean'}] %}

{{ clean.service('pgha-patroni', mapdata, 'patroni',
                 unit_files=[patroni.unit_file] if patroni.install == 'pip' else []) }}

pgha-patroni-config-file-clean:
  file.absent:
    - name: {{ clean.path(mapdata, patroni.config_file) }}
    - require: {{ stopped | json }}

pgha-patroni-post-bootstrap-file-clean:
  file.absent:
    - name: {{ clean.path(mapdata, patroni.post_bootstrap_file) }}
    - require: {{ stopped | json }}

pgha-patroni-pgpass-file-clean:
  file.absent:
    - name: {{ clean.path(mapdata, patroni.pgpass_file) }}
    - require: {{ stopped | json }}
{%- set configured = stopped + [{'file': 'pgha-patroni-config-file-clean'},
                                {'file': 'pgha-patroni-post-bootstrap-file-clean'},
                                {'file': 'pgha-patroni-pgpass-file-clean'}] %}
{%- if systemd %}

# pgha.patroni.watchdog's files, whatever the watchdog's mode is now.
pgha-patroni-watchdog-files-clean:
  file.absent:
    - names:
      - {{ clean.path(mapdata, patroni.watchdog.udev_rule_file) }}
      - {{ clean.path(mapdata, patroni.watchdog.modules_load_file) }}
    - require: {{ stopped | json }}
{%-   do configured.append({'file': 'pgha-patroni-watchdog-files-clean'}) %}
{%- endif %}
{%- if patroni.install == 'pip' %}

pgha-patroni-venv-dir-clean:
  file.absent:
    - name: {{ clean.path(mapdata, patroni.venv_dir) }}
    - require: {{ configured | json }}

{{ clean.packages('pgha-patroni-venv-package-clean', mapdata, 'patroni', patroni.venv_pkgs,
                  configured + [{'file': 'pgha-patroni-venv-dir-clean'}]) }}
{%- else %}

{{ clean.packages('pgha-patroni-package-clean', mapdata, 'patroni', patroni.pkgs, configured) }}
{%- endif %}

{{ clean.data('pgha-patroni-data-dir-clean', mapdata, [patroni.data_dir, patroni.log_dir], stopped) }}
