# -*- coding: utf-8 -*-
# vim: ft=sls
# pgBackRest on a PostgreSQL node or on the backup node (pillar pgha:backup):
# the package, its configuration for this host's role and its TLS server.
include:
  - .package
  - .config
  - .service
