# -*- coding: utf-8 -*-
# vim: ft=sls
# A PostgreSQL node: PostgreSQL 15 run by Patroni.
include:
  - .repo
  - .package
  - .distro_service
  - {{ tpldir.split('/')[0] }}.patroni
