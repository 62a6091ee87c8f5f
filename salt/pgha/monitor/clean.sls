# -*- coding: utf-8 -*-
# vim: ft=sls
# Prometheus and Alertmanager off this host (`state.apply pgha.monitor.clean`;
# pgha.clean includes it on the monitor node): both stopped and out of their
# service manager, their packages removed, then the formula's files (the
# configuration, the rules, Alertmanager's file with its receivers, the
# command lines). Their samples and silences stay unless pgha:clean:purge_data.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set prom = mapdata.lookup.prometheus %}
{%- set am = mapdata.lookup.alertmanager %}

{{ clean.service('pgha-prometheus', mapdata, 'prometheus') }}

{{ clean.service('pgha-alertmanager', mapdata, 'alertmanager') }}

{{ clean.packages('pgha-monitor-package-clean', mapdata, 'monitor', prom.pkgs + am.pkgs,
                  [{'test': 'pgha-prometheus-service-clean'}, {'test': 'pgha-alertmanager-service-clean'}],
                  conffiles={'pgha-prometheus-env-file-clean': prom.env_file,
                             'pgha-alertmanager-env-file-clean': am.env_file}) }}

pgha-monitor-files-clean:
  file.absent:
    - names:
      - {{ clean.path(mapdata, prom.config_file) }}
      - {{ clean.path(mapdata, prom.rules_file) }}
      - {{ clean.path(mapdata, am.config_file) }}
    - require:
      - test: pgha-prometheus-service-clean
      - test: pgha-alertmanager-service-clean

{{ clean.data('pgha-monitor-data-clean', mapdata, [prom.data_dir, am.data_dir],
              [{'test': 'pgha-prometheus-service-clean'}, {'test': 'pgha-alertmanager-service-clean'}]) }}
