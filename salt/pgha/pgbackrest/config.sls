# -*- coding: utf-8 -*-
# vim: ft=sls
# pgBackRest's configuration for this host's role, its directories, its TLS
# key kept to its user, and (PostgreSQL nodes) the superuser's password for
# its local connections and PostgreSQL's archive command (pgha-archive-push).
# The configuration holds the repository's passphrase: owned by pgBackRest's
# user, mode 0600, never diffed.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set pgbackrest = mapdata.lookup.pgbackrest %}
{%- set backup = mapdata.backup %}
{%- set on_backup = 'backup' in mapdata.roles %}
{%- set user = pgbackrest.repo_user if on_backup else mapdata.lookup.patroni.user %}
{%- set group = pgbackrest.repo_user if on_backup else mapdata.lookup.patroni.group %}
{%- set host = salt['pgha_host.check'](saltenv=saltenv, patroni=False) %}
{%- if not host.ready %}
{{ raise("pgha: files are missing, nothing was changed:\n  " ~ (host.errors | join('\n  ')) ~ "\nPlace them from your PKI (see docs/how-to/backup.md).") }}
{%- endif %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.pgbackrest.package

pgha-pgbackrest-dirs-managed:
  file.directory:
    - names:
      - {{ pgbackrest.log_dir }}
      - {{ pgbackrest.lock_dir }}
{%- if on_backup %}
      - {{ backup.repo_path }}
{%- else %}
      - {{ pgbackrest.spool_dir }}
      - {{ pgbackrest.restore_dir }}
{%- endif %}
    - user: {{ user }}
    - group: {{ group }}
    - mode: '0750'
    - makedirs: True
    - require:
      - pkg: pgha-pgbackrest-package-installed
{%- if on_backup %}
      - user: pgha-pgbackrest-repo-user-present
{%- endif %}

pgha-pgbackrest-tls-key-protected:
  file.managed:
    - name: {{ backup.tls.key_file }}
    - replace: False
    - user: {{ user }}
    - group: {{ group }}
    - mode: '0600'
    - show_changes: False
    - require:
      - file: pgha-pgbackrest-dirs-managed
{%- if not on_backup %}

pgha-pgbackrest-pgpass-managed:
  file.managed:
    - name: {{ pgbackrest.pgpass_file }}
    - user: {{ user }}
    - group: {{ group }}
    - mode: '0600'
    - makedirs: True
    - show_changes: False
    # a template: the password never appears in the state's arguments
    - source: salt://{{ tplroot }}/pgbackrest/files/pgpass.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - require:
      - pkg: pgha-pgbackrest-package-installed

pgha-pgbackrest-archive-push-file-managed:
  file.managed:
    - name: {{ pgbackrest.archive_push_file }}
    - source: salt://{{ tplroot }}/pgbackrest/files/pgha-archive-push.sh.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - user: root
    - group: root
    - mode: '0755'
    - makedirs: True
    - dir_mode: '0755'
    - require:
      - pkg: pgha-pgbackrest-package-installed
{%- endif %}

pgha-pgbackrest-config-file-managed:
  file.managed:
    - name: {{ pgbackrest.config_file }}
    - source: salt://{{ tplroot }}/pgbackrest/files/pgbackrest.conf.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - user: {{ user }}
    - group: {{ group }}
    - mode: '0600'
    - makedirs: True
    - dir_mode: '0755'
    - show_changes: False
    - require:
      - file: pgha-pgbackrest-dirs-managed
      - file: pgha-pgbackrest-tls-key-protected
