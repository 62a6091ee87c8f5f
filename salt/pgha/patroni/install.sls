# -*- coding: utf-8 -*-
# vim: ft=sls
# Patroni itself (pillar pgha:lookup:patroni:install).
# pip (default): PyPI's Patroni at pgha:patroni:version with its etcd3 and
# psycopg3 extras, in a virtualenv of its own made with the system Python
# (so the postgres user can run it), owned by root, 0755, not writable by
# postgres (state patroni.installed). Nothing runs when the version pip
# recorded in the virtualenv is that one; another version is installed in place (the running
# Patroni keeps its code until it is restarted: salt-run pgha.restart
# what=patroni). package: the distribution's packages.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set patroni = mapdata.lookup.patroni %}
{%- if patroni.install == 'pip' %}
{%-   set venv = patroni.venv_dir %}
{%-   set pip = patroni.pip %}
{%-   set options = ['--disable-pip-version-check', '--no-input', '--quiet'] %}
{%-   if pip.wheel_dir %}
{%-     do options.extend(['--no-index', '--find-links', pip.wheel_dir]) %}
{%-   endif %}

pgha-patroni-venv-package-installed:
  pkg.installed:
    - pkgs: {{ patroni.venv_pkgs | json }}

pgha-patroni-venv-dir-managed:
  file.directory:
    - name: {{ venv }}
    - user: root
    - group: root
    - dir_mode: '0755'
    - mode: '0755'
    - makedirs: True

pgha-patroni-pip-installed:
  patroni.installed:
    - name: {{ venv }}
    - version: {{ mapdata.patroni.version | json }}
    - requirement: {{ pip.requirement | json }}
    - python: {{ patroni.python }}
    - pip_options: {{ options | json }}
{%-   if pip.index_url %}
    # Through pip's environment: the URL may carry credentials; pip masks them in its output.
    - index_url: {{ pip.index_url | json }}
{%-   endif %}
    - require:
      - pkg: pgha-patroni-venv-package-installed
      - file: pgha-patroni-venv-dir-managed
{%-   set installed = {'patroni': 'pgha-patroni-pip-installed'} %}
{%- else %}

pgha-patroni-package-installed:
  pkg.installed:
    - pkgs: {{ patroni.pkgs | json }}
{%-   set installed = {'pkg': 'pgha-patroni-package-installed'} %}
{%- endif %}

# Said only when Patroni was just installed or changed.
pgha-patroni-restart-pending-noted:
  test.show_notification:
    - text: >-
        Patroni {{ mapdata.patroni.version if patroni.install == 'pip' else '(package)' }} installed on
        {{ mapdata.id }}: a Patroni that was already running keeps its version until it is restarted
        (salt-run pgha.restart what=patroni; salt-run pgha.status shows the version each member runs)
    - onchanges:
      - {{ installed | json }}
