# -*- coding: utf-8 -*-
# vim: ft=sls
# Alertmanager: pillar's route and receivers (monitor:alertmanager), checked
# by amtool before it is written; one instance (no cluster of
# Alertmanagers: --cluster.listen-address is empty). The file may hold a
# receiver's credentials: owner root, group of the service, 0640, never
# diffed in the state's output.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set am = mapdata.lookup.alertmanager %}
{%- set m = mapdata.monitor %}
{%- set args = ' '.join([
      '--config.file=' ~ am.config_file,
      '--storage.path=' ~ am.data_dir,
      '--web.listen-address=' ~ m.address ~ ':' ~ m.ports.alertmanager,
      '--web.external-url=' ~ m.alertmanager_url ~ '/',
      '--cluster.listen-address=']) %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.supervisord

pgha-alertmanager-package-installed:
  pkg.installed:
    - pkgs: {{ am.pkgs | json }}

pgha-alertmanager-dirs-managed:
  file.directory:
    - names:
      - {{ am.data_dir }}:
        - user: {{ am.user }}
        - group: {{ am.user }}
        - mode: '0750'
      - {{ salt['file.dirname'](am.config_file) }}:
        - user: root
        - group: root
        - mode: '0755'
    - makedirs: True
    - require:
      - pkg: pgha-alertmanager-package-installed

pgha-alertmanager-config-file-managed:
  file.managed:
    - name: {{ am.config_file }}
    - contents: {{ {'route': m.alertmanager.route, 'receivers': m.alertmanager.receivers} | yaml(False) | json }}
    - user: root
    - group: {{ am.user }}
    - mode: '0640'
    - show_changes: False
    - check_cmd: {{ salt['file.dirname'](am.binary) }}/amtool check-config
    - tmp_ext: .yml
    - require:
      - file: pgha-alertmanager-dirs-managed

pgha-alertmanager-env-file-managed:
  file.managed:
    - name: {{ am.env_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): Alertmanager's command line (Debian's unit reads ARGS).
        ARGS="{{ args }}"
    - require:
      - pkg: pgha-alertmanager-package-installed

{{ service('pgha-alertmanager', mapdata, 'alertmanager', am.binary ~ ' ' ~ args, am.user,
           [{'file': 'pgha-alertmanager-config-file-managed'}],
           reload=True, require_ids=[{'file': 'pgha-alertmanager-env-file-managed'}]) }}
