# -*- coding: utf-8 -*-
# vim: ft=sls
# The backup node off this host (`state.apply pgha.backup.clean`): the
# schedule stopped (timers or the schedule program) and its files removed,
# then pgBackRest (pgha.pgbackrest.clean). The repository stays unless
# pgha:clean:purge_data.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set pgbackrest = mapdata.lookup.pgbackrest %}
{%- set units = [] %}
{%- for kind in ['full', 'diff', 'incr'] %}
{%-   do units.extend([pgbackrest.timer_dir ~ '/pgha-backup-' ~ kind ~ '.timer', pgbackrest.timer_dir ~ '/pgha-backup-' ~ kind ~ '.service']) %}
{%- endfor %}

include:
  - {{ tplroot }}.pgbackrest.clean
{%- if mapdata.lookup.service_manager == 'systemd' %}
{%-   for kind in ['full', 'diff', 'incr'] %}

pgha-backup-{{ kind }}-timer-dead-clean:
  service.dead:
    - name: pgha-backup-{{ kind }}.timer
    - enable: False
    - onlyif: test -f {{ pgbackrest.timer_dir }}/pgha-backup-{{ kind }}.timer
    - require_in:
      - file: pgha-backup-files-clean
{%-   endfor %}
{%- else %}

{{ clean.service('pgha-backup-schedule', mapdata, 'backup_schedule') }}
{%- endif %}

pgha-backup-files-clean:
  file.absent:
    - names:
      - {{ clean.path(mapdata, pgbackrest.script_file) }}
      - {{ clean.path(mapdata, salt['file.dirname'](pgbackrest.script_file) ~ '/pgha_schedule.py') }}
      - {{ clean.path(mapdata, mapdata.lookup.backup_schedule.state_file) }}
{%- if mapdata.lookup.service_manager == 'systemd' %}
{%-   for unit in units %}
      - {{ clean.path(mapdata, unit) }}
{%-   endfor %}
{%- else %}
    - require:
      - test: pgha-backup-schedule-service-clean
{%- endif %}
    - require_in:
      - test: pgha-pgbackrest-service-clean
