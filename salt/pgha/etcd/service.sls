# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set etcd = mapdata.lookup.etcd %}

include:
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.etcd.config

{{ service('pgha-etcd', mapdata, 'etcd',
           "/bin/sh -c 'set -a; . " ~ etcd.env_file ~ "; exec " ~ etcd.binary ~ "'",
           etcd.user,
           [{'file': 'pgha-etcd-env-file-managed'}],
           require_ids=[{'file': 'pgha-etcd-data-dir-managed'}]) }}
