# -*- coding: utf-8 -*-
# vim: ft=sls
# pgbouncer.ini and its auth file. Clients log in with SCRAM: PgBouncer looks
# their verifier up in PostgreSQL as users:pooler (auth_query), whose
# password is the secret the auth file holds (with monitoring, the exporters'
# role's too, a stats user): owned by PgBouncer's user,
# mode 0600, never diffed. The admin console is reached only through the
# Unix socket, as PgBouncer's own Unix user (no admin_users).
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set pooler = mapdata.lookup.pgbouncer %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.pgbouncer.package
  - {{ tplroot }}.postgresql.tls

pgha-pgbouncer-dirs-managed:
  file.directory:
    - names:
      - {{ salt['file.dirname'](pooler.config_file) }}
      - {{ pooler.socket_dir }}
    - user: {{ pooler.user }}
    - group: {{ pooler.user }}
    - mode: '0750'
    - makedirs: True
    - require:
      - pkg: pgha-pgbouncer-package-installed

pgha-pgbouncer-config-file-managed:
  file.managed:
    - name: {{ pooler.config_file }}
    - source: salt://{{ tplroot }}/pgbouncer/files/pgbouncer.ini.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - user: {{ pooler.user }}
    - group: {{ pooler.user }}
    - mode: '0640'
    - require:
      - file: pgha-pgbouncer-dirs-managed
      - test: pgha-postgresql-tls-checked

{%- set logins = [(mapdata.users.pooler, mapdata.secrets.pooler_password)] %}
{%- if mapdata.monitor.enabled %}
{#- the exporters' role, one of stats_users: SHOW commands on PgBouncer's console only #}
{%-   do logins.append((mapdata.users.monitor, mapdata.secrets.monitor_password)) %}
{%- endif %}

pgha-pgbouncer-auth-file-managed:
  file.managed:
    - name: {{ pooler.auth_file }}
    - contents: |
{%- for user, password in logins %}
        "{{ user }}" "{{ password | replace('"', '""') }}"
{%- endfor %}
    - user: {{ pooler.user }}
    - group: {{ pooler.user }}
    - mode: '0600'
    - show_changes: False
    - require:
      - file: pgha-pgbouncer-dirs-managed
