# -*- coding: utf-8 -*-
# vim: ft=sls
# Patroni's configuration and PostgreSQL's directories. The configuration
# holds passwords: owned by the postgres user, mode 0600, never diffed. The
# postgres user comes with PostgreSQL's package; Patroni itself
# (pgha.patroni.install) is needed only by the service.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set patroni = mapdata.lookup.patroni %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.postgresql.package
  - {{ tplroot }}.etcd.tls
  - {{ tplroot }}.postgresql.tls
{%- if mapdata.backup.enabled %}
  - {{ tplroot }}.pgbackrest.config
{%- endif %}

pgha-patroni-data-dir-managed:
  file.directory:
    - name: {{ patroni.data_dir }}
    - user: {{ patroni.user }}
    - group: {{ patroni.group }}
    - mode: '0700'
    - makedirs: True
    - require:
      - pkg: pgha-postgresql-package-installed

pgha-patroni-dirs-managed:
  file.directory:
    - names:
      - {{ patroni.socket_dir }}
      - {{ salt['file.dirname'](patroni.pgpass_file) }}
      - {{ patroni.log_dir }}
    - user: {{ patroni.user }}
    - group: {{ patroni.group }}
    - mode: '0755'
    - makedirs: True
    - require:
      - pkg: pgha-postgresql-package-installed

pgha-patroni-post-bootstrap-file-managed:
  file.managed:
    - name: {{ patroni.post_bootstrap_file }}
    - source: salt://{{ tplroot }}/patroni/files/post_bootstrap.sh.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - user: {{ patroni.user }}
    - group: {{ patroni.group }}
    - mode: '0700'
    - makedirs: True
    - dir_mode: '0755'
    - show_changes: False
    - require:
      - file: pgha-patroni-dirs-managed

pgha-patroni-config-file-managed:
  file.managed:
    - name: {{ patroni.config_file }}
    - source: salt://{{ tplroot }}/patroni/files/config.yml.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - user: {{ patroni.user }}
    - group: {{ patroni.group }}
    - mode: '0600'
    - makedirs: True
    - dir_mode: '0755'
    - show_changes: False
    - require:
      - file: pgha-patroni-data-dir-managed
      - file: pgha-patroni-dirs-managed
      - file: pgha-patroni-post-bootstrap-file-managed
      - test: pgha-etcd-tls-checked
      - test: pgha-postgresql-tls-checked
{%- if mapdata.backup.enabled %}
      # archive_command and the replicas' restores use pgBackRest's configuration
      - file: pgha-pgbackrest-config-file-managed
      - file: pgha-pgbackrest-archive-push-file-managed
{%- endif %}
