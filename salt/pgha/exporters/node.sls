# -*- coding: utf-8 -*-
# vim: ft=sls
# The node exporter on this host's address; its textfile collector reads
# the directory where the backup node writes its newest backup's time.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- from tplroot ~ "/service.jinja" import service with context %}
{%- set node = mapdata.lookup.node_exporter %}
{%- set args = ' '.join([
      '--web.listen-address=' ~ mapdata.node.address ~ ':' ~ mapdata.monitor.ports.node_exporter,
      '--collector.textfile.directory=' ~ node.textfile_dir]
      + (['--web.config.file=' ~ mapdata.lookup.exporter_web.config_file] if mapdata.monitor.tls.enabled else [])) %}

include:
  - {{ tplroot }}.root
  - {{ tplroot }}.supervisord
  - {{ tplroot }}.exporters.tls

pgha-node-exporter-package-installed:
  pkg.installed:
    - pkgs: {{ node.pkgs | json }}

pgha-node-exporter-textfile-dir-managed:
  file.directory:
    - name: {{ node.textfile_dir }}
{%- if 'backup' in mapdata.roles %}
    # the backup script (run as the repository's user) writes there
    - user: {{ mapdata.lookup.pgbackrest.repo_user }}
{%- else %}
    - user: root
{%- endif %}
    - group: root
    - mode: '0755'
    - makedirs: True
    - require:
      - pkg: pgha-node-exporter-package-installed

pgha-node-exporter-env-file-managed:
  file.managed:
    - name: {{ node.env_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): the node exporter's command line (Debian's unit reads ARGS).
        ARGS="{{ args }}"
    - require:
      - pkg: pgha-node-exporter-package-installed

{{ service('pgha-node-exporter', mapdata, 'node_exporter', node.binary ~ ' ' ~ args, node.user,
           [{'file': 'pgha-node-exporter-env-file-managed'}, {'test': 'pgha-exporters-tls-checked'}],
           require_ids=[{'file': 'pgha-node-exporter-textfile-dir-managed'}]) }}
