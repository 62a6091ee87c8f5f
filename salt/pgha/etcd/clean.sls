# -*- coding: utf-8 -*-
# vim: ft=sls
# etcd off this host (`state.apply pgha.etcd.clean`): the service stopped and
# out of its service manager, the formula's settings and the packages
# removed. A member still in the cluster should leave it first (remove it
# from pillar and run the orchestration: pgha.etcd_members). Its data
# directory (and the copies moved aside when it left) stays unless
# pgha:clean:purge_data.
# /etc/default/etcd is Debian's etcd-server conffile, rewritten by the
# formula: removed only once the package is.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set etcd = mapdata.lookup.etcd %}
{%- set stopped = [{'test': 'pgha-etcd-service-clean'}] %}

{{ clean.service('pgha-etcd', mapdata, 'etcd', unit_files=[etcd.dropin_file]) }}

pgha-etcd-initial-env-file-clean:
  file.absent:
    - name: {{ clean.path(mapdata, etcd.initial_env_file) }}
    - require: {{ stopped | json }}

{{ clean.packages('pgha-etcd-package-clean', mapdata, 'etcd', etcd.pkgs,
                  stopped + [{'file': 'pgha-etcd-initial-env-file-clean'}],
                  conffiles={'pgha-etcd-env-file-clean': etcd.env_file}) }}

{{ clean.data('pgha-etcd-data-dir-clean', mapdata, [etcd.data_dir], stopped) }}
{%- if mapdata.clean.purge_data %}

# The data directories moved aside when this member left the cluster
# (etcd_cluster.retire_local: <data_dir>.removed-<UTC time>).
pgha-etcd-retired-data-clean:
  cmd.run:
    - name: rm -rf -- {{ clean.path(mapdata, etcd.data_dir) | quote }}.removed-*
    - onlyif: ls -d -- {{ clean.path(mapdata, etcd.data_dir) | quote }}.removed-* >/dev/null 2>&1
    - require: {{ stopped | json }}
{%- endif %}
