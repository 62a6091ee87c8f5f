# -*- coding: utf-8 -*-
# vim: ft=sls
# This host's supervisord, when it is the service manager (containers, the
# lab): its configuration and the daemon itself. Nothing on systemd hosts.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}

include:
  - {{ tplroot }}.root
{%- set sup = mapdata.lookup.supervisor %}
{%- if mapdata.lookup.service_manager == 'supervisord' %}

pgha-supervisord-package-installed:
  pkg.installed:
    - name: supervisor

pgha-supervisord-dirs-managed:
  file.directory:
    - names:
      - {{ sup.include_dir }}
      - {{ sup.log_dir }}
      - {{ salt['file.dirname'](sup.socket) }}
      - {{ salt['file.dirname'](sup.pidfile) }}
    - mode: '0755'
    - makedirs: True

pgha-supervisord-config-file-managed:
  file.managed:
    - name: {{ sup.conf_file }}
    - mode: '0644'
    - makedirs: True
    - dir_mode: '0755'
    - contents: |
        # Managed by Salt (pgha): this host's service manager.
        [unix_http_server]
        file={{ sup.socket }}
        chmod=0700

        [supervisord]
        pidfile={{ sup.pidfile }}
        logfile={{ sup.log_dir }}/supervisord.log
        childlogdir={{ sup.log_dir }}
        nodaemon=false

        [rpcinterface:supervisor]
        supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

        [supervisorctl]
        serverurl=unix://{{ sup.socket }}

        [include]
        files = {{ sup.include_dir }}/*.conf
    - require:
      - file: pgha-supervisord-dirs-managed

pgha-supervisord-service-running:
  pgha_service.manager_running:
    - name: {{ sup.conf_file }}
    - require:
      - pkg: pgha-supervisord-package-installed
      - file: pgha-supervisord-config-file-managed
{%- endif %}
