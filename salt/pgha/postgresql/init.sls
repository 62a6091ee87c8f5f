# -*- coding: utf-8 -*-
# vim: ft=sls
# A PostgreSQL node: PostgreSQL 15 run by Patroni; with a backup node in the
# cluster, pgBackRest too (WAL archived from here while this node leads,
# its data directory served to the backup node for backups).
{%- from tpldir.split('/')[0] ~ "/map.jinja" import mapdata with context %}
include:
  - .repo
  - .package
  - .distro_service
{%- if mapdata.backup.enabled %}
  - {{ tpldir.split('/')[0] }}.pgbackrest
{%- endif %}
  - {{ tpldir.split('/')[0] }}.patroni
