# -*- coding: utf-8 -*-
# vim: ft=sls
# pgBackRest's package; on the backup node, the system user that owns the
# repository (on the PostgreSQL nodes pgBackRest runs as postgres).
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set pgbackrest = mapdata.lookup.pgbackrest %}

pgha-pgbackrest-package-installed:
  pkg.installed:
    - pkgs: {{ pgbackrest.pkgs | json }}
{%- if 'backup' in mapdata.roles %}

pgha-pgbackrest-repo-user-present:
  user.present:
    - name: {{ pgbackrest.repo_user }}
    - system: True
    - usergroup: True
    - home: {{ pgbackrest.repo_user_home }}
    - createhome: False
    - shell: /usr/sbin/nologin
    - require:
      - pkg: pgha-pgbackrest-package-installed
{%- endif %}
