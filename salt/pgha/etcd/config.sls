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

# etcd's settings are in place before its package is installed: Debian's
# etcd-server starts etcd when installed on a systemd host, and a first
# start with the package's own settings would make a one-member cluster of
# its own in the data directory. (Missing TLS files stop the run when the
# states render, before this.)
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
    - require_in:
      - pkg: pgha-etcd-package-installed

# What the member starts from when its data directory is empty; left alone
# once it holds member data (etcd reads it only then), so changing the
# membership in pillar restarts no running member.
pgha-etcd-initial-env-file-managed:
  file.managed:
    - name: {{ etcd.initial_env_file }}
    - source: salt://{{ tplroot }}/etcd/files/etcd-initial.env.jinja
    - template: jinja
    - context:
        tplroot: {{ tplroot }}
    - mode: '0644'
    - makedirs: True
    - dir_mode: '0755'
    - unless: test -d {{ etcd.data_dir }}/member
    - require_in:
      - pkg: pgha-etcd-package-installed
