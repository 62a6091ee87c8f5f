# -*- coding: utf-8 -*-
# vim: ft=sls
include:
  - .package
  - .hosts
  - .config
  - .service
