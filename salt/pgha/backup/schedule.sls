# -*- coding: utf-8 -*-
# vim: ft=sls
# The backup schedule (pgha:backup:schedule) on the backup node: the script
# that takes one backup (from a standby when one answers, else from the
# leader; pgBackRest expires what retention no longer keeps), run by a
# systemd timer per scheduled type on real hosts, by the formula's schedule
# program (_utils/pgha_schedule.py, the same calendar expressions) under
# supervisord.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set pgbackrest = mapdata.lookup.pgbackrest %}
{%- set schedule = mapdata.lookup.backup_schedule %}
{%- set user = pgbackrest.repo_user %}
{%- set kinds = ['full', 'diff', 'incr'] %}

include:
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.pgbackrest.config

pgha-backup-script-file-managed:
  file.managed:
    - name: {{ pgbackrest.script_file }}
    - source: salt://{{ tplroot }}/backup/files/pgha-backup.sh.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True
    - dir_mode: '0755'
    - require:
      - file: pgha-pgbackrest-config-file-managed
{%- if mapdata.lookup.service_manager == 'systemd' %}
{%-   for kind in kinds %}
{%-     set unit = 'pgha-backup-' ~ kind %}
{%-     if mapdata.backup.schedule[kind] is not none %}

pgha-backup-{{ kind }}-units-managed:
  file.managed:
    - names:
      - {{ pgbackrest.timer_dir }}/{{ unit }}.service:
        - contents: |
            # Managed by Salt (pgha): one {{ kind }} backup of stanza {{ mapdata.backup.stanza }}.
            [Unit]
            Description=pgha: {{ kind }} backup of {{ mapdata.backup.stanza }} (pgBackRest)
            After=network-online.target pgbackrest.service

            [Service]
            Type=oneshot
            User={{ user }}
            Group={{ user }}
            ExecStart={{ pgbackrest.script_file }} {{ kind }}
      - {{ pgbackrest.timer_dir }}/{{ unit }}.timer:
        - contents: |
            # Managed by Salt (pgha): pgha:backup:schedule:{{ kind }}.
            [Unit]
            Description=pgha: {{ kind }} backups of {{ mapdata.backup.stanza }} at {{ mapdata.backup.schedule[kind] }}

            [Timer]
            OnCalendar={{ mapdata.backup.schedule[kind] }}
            Persistent=true

            [Install]
            WantedBy=timers.target
    - mode: '0644'
    - require:
      - file: pgha-backup-script-file-managed

pgha-backup-{{ kind }}-units-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: pgha-backup-{{ kind }}-units-managed

pgha-backup-{{ kind }}-timer-running:
  service.running:
    - name: {{ unit }}.timer
    - enable: True
    - require:
      - cmd: pgha-backup-{{ kind }}-units-reloaded
{%-     else %}

pgha-backup-{{ kind }}-timer-dead:
  service.dead:
    - name: {{ unit }}.timer
    - enable: False
    - onlyif: test -f {{ pgbackrest.timer_dir }}/{{ unit }}.timer
{%-     endif %}
{%-   endfor %}
{%- else %}
{%-   set args = [] %}
{%-   for kind in kinds if mapdata.backup.schedule[kind] is not none %}
{%-     do args.append('--' ~ kind ~ '="' ~ mapdata.backup.schedule[kind] ~ '"') %}
{%-   endfor %}

pgha-backup-schedule-program-file-managed:
  file.managed:
    - name: {{ salt['file.dirname'](pgbackrest.script_file) }}/pgha_schedule.py
    - source: salt://_utils/pgha_schedule.py
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True

pgha-backup-schedule-state-dir-managed:
  file.directory:
    - name: {{ salt['file.dirname'](schedule.state_file) }}
    - user: {{ user }}
    - group: {{ user }}
    - mode: '0750'
    - makedirs: True

{{ service('pgha-backup-schedule', mapdata, 'backup_schedule',
           '/usr/bin/python3 ' ~ salt['file.dirname'](pgbackrest.script_file) ~ '/pgha_schedule.py run --script=' ~ pgbackrest.script_file ~ ' --state-file=' ~ schedule.state_file ~ ' ' ~ (args | join(' ')),
           user,
           [{'file': 'pgha-backup-schedule-program-file-managed'}, {'file': 'pgha-backup-script-file-managed'}],
           require_ids=[{'file': 'pgha-backup-schedule-state-dir-managed'}]) }}
{%- endif %}
