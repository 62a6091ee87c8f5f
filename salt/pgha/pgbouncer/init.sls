# -*- coding: utf-8 -*-
# vim: ft=sls
# PgBouncer on the HAProxy node (pillar pgha:pgbouncer:enabled): the pooled
# entry for applications, in front of HAProxy's leader port.
include:
  - .package
  - .config
  - .service
