# -*- coding: utf-8 -*-
# vim: ft=sls
# The backup node (role backup): pgBackRest's repository, served to the
# PostgreSQL nodes by its TLS server, and the backup schedule
# (pgha:backup:schedule). The stanza and the first full backup are the
# orchestration's (stage pgha-orch-backup-ready): they need the cluster.
include:
  - {{ tpldir.split('/')[0] }}.pgbackrest
  - .schedule
