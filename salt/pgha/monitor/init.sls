# -*- coding: utf-8 -*-
# vim: ft=sls
# The monitor node (role monitor): Prometheus, scraping every target of the
# cluster (pgha_config.mapdata's monitor:jobs) with the formula's alert
# rules, and Alertmanager, routing the alerts to pillar's receivers.
# docs/how-to/monitoring.md.
include:
  - .prometheus
  - .alertmanager
