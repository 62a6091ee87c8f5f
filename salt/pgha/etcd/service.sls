# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set etcd = mapdata.lookup.etcd %}

include:
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.etcd.config

{%- set require_ids = [{'file': 'pgha-etcd-data-dir-managed'}, {'file': 'pgha-etcd-initial-env-file-managed'}] %}
{%- if mapdata.lookup.service_manager == 'systemd' %}
{%-   do require_ids.append({'cmd': 'pgha-etcd-unit-daemon-reloaded'}) %}

# The distribution's unit reads /etc/default/etcd; this gives it the initial file too.
pgha-etcd-unit-dropin-managed:
  file.managed:
    - name: {{ etcd.dropin_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): etcd's settings for a start from an empty data directory.
        [Service]
        EnvironmentFile=-{{ etcd.initial_env_file }}
    - require_in:
      - pkg: pgha-etcd-package-installed

pgha-etcd-unit-daemon-reloaded:
  cmd.run:
    - name: systemctl daemon-reload
    - onchanges:
      - file: pgha-etcd-unit-dropin-managed
    - require_in:
      - pkg: pgha-etcd-package-installed
{%- endif %}

{{ service('pgha-etcd', mapdata, 'etcd',
           "/bin/sh -c 'set -a; . " ~ etcd.env_file ~ "; [ ! -f " ~ etcd.initial_env_file ~ " ] || . "
             ~ etcd.initial_env_file ~ "; exec " ~ etcd.binary ~ "'",
           etcd.user,
           [{'file': 'pgha-etcd-env-file-managed'}],
           require_ids=require_ids) }}
