# -*- coding: utf-8 -*-
# vim: ft=sls
# Patroni runs PostgreSQL. A configuration change reloads Patroni (SIGHUP):
# restarting it on the leader would move the leader. A new Patroni
# (pgha:patroni:version) or a new service definition restarts nothing: the
# running Patroni keeps its code until it is restarted, replicas first and
# the leader after a switchover (salt-run pgha.restart what=patroni).
# systemd with install: pip: the formula's own unit (ExecStart in the
# virtualenv), systemd reloaded when it changes; the distribution's unit
# with install: package.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set patroni = mapdata.lookup.patroni %}
{%- set require_ids = [{'sls': tplroot ~ '.patroni.install'}, {'sls': tplroot ~ '.patroni.watchdog'}] %}

include:
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.patroni.install
  - {{ tplroot }}.patroni.config
  - {{ tplroot }}.patroni.watchdog
{%- if mapdata.lookup.service_manager == 'systemd' and patroni.install == 'pip' %}
{%-   do require_ids.append({'cmd': 'pgha-patroni-unit-daemon-reloaded'}) %}

pgha-patroni-unit-file-managed:
  file.managed:
    - name: {{ patroni.unit_file }}
    - user: root
    - group: root
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): Patroni {{ mapdata.patroni.version }} from its virtualenv {{ patroni.venv_dir }}.
        [Unit]
        Description=Patroni, member {{ mapdata.id }} of the PostgreSQL cluster {{ mapdata.cluster.scope }} (pgha)
        After=network-online.target
        Wants=network-online.target
        ConditionPathExists={{ patroni.config_file }}

        [Service]
        Type=simple
        User={{ patroni.user }}
        Group={{ patroni.group }}
        ExecStart={{ patroni.binary }} {{ patroni.config_file }}
        # Patroni reads its configuration again; PostgreSQL keeps running.
        ExecReload=/bin/kill -HUP $MAINPID
        # Only Patroni gets the stop signal: it stops PostgreSQL itself, cleanly.
        KillMode=process
        TimeoutSec=60
        Restart=on-failure

        [Install]
        WantedBy=multi-user.target

pgha-patroni-unit-daemon-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: pgha-patroni-unit-file-managed
{%- endif %}

{{ service('pgha-patroni', mapdata, 'patroni',
           patroni.binary ~ ' ' ~ patroni.config_file,
           patroni.user,
           [{'file': 'pgha-patroni-config-file-managed'}],
           reload=True,
           require_ids=require_ids) }}
