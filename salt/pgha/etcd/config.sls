# -*- coding: utf-8 -*-
# vim: ft=sls
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set etcd = mapdata.lookup.etcd %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.etcd.package
  - {{ tplroot }}.etcd.tls

pgha-etcd-data-dir-managed:
  file.directory:
    - name: {{ etcd.data_dir }}
    - user: {{ etcd.user }}
    - group: {{ etcd.user }}
    - mode: '0700'
    - makedirs: True
    - require:
      - pkg: pgha-etcd-package-installed

pgha-etcd-env-file-managed:
  file.managed:
    - name: {{ etcd.env_file }}
    - source: salt://{{ tplroot }}/etcd/files/etcd.env.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - mode: '0644'
    - makedirs: True
    - dir_mode: '0755'
    - require:
      - pkg: pgha-etcd-package-installed
      - test: pgha-etcd-tls-checked
