# -*- coding: utf-8 -*-
# vim: ft=sls
# This host's supervisord off it (`state.apply pgha.supervisord.clean`), when
# it is the service manager: the daemon stopped by its pid file (it stops
# the programs it still runs), its configuration, include directory, socket
# and pid file removed, then the supervisor package. The process is stopped
# only when its command line names this host's configuration file: another
# root's supervisord (the lab's other hosts) is never touched. Every state
# is `order: last`: applied with the components' clean states (pgha.clean),
# it runs after them. Its log directory stays unless pgha:clean:purge_data.
# Nothing on systemd hosts.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- import tplroot ~ "/clean.jinja" as clean with context %}
{%- set sup = mapdata.lookup.supervisor %}
{%- if mapdata.lookup.service_manager == 'supervisord' %}
{%-   set pidfile = clean.path(mapdata, sup.pidfile) | quote %}
{%-   set stopped = [{'cmd': 'pgha-supervisord-service-dead-clean'}] %}

pgha-supervisord-service-dead-clean:
  cmd.run:
    # SIGTERM, then at most 150 s for its programs to stop (Patroni's stopwaitsecs is 60)
    - name: >-
        pid=$(cat {{ pidfile }}) && kill -TERM "$pid" &&
        for i in $(seq 1500); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done;
        echo "supervisord (pid $pid) still runs after 150 s" >&2; exit 1
    # this root's supervisord only: its command line names this host's configuration file
    - onlyif: >-
        pid=$(cat {{ pidfile }} 2>/dev/null) && [ -n "$pid" ] &&
        tr '\0' '\n' < /proc/"$pid"/cmdline 2>/dev/null | grep -qxF -- {{ sup.conf_file | quote }}
    - order: last

pgha-supervisord-config-file-clean:
  file.absent:
    - name: {{ clean.path(mapdata, sup.conf_file) }}
    - require: {{ stopped | json }}
    - order: last

pgha-supervisord-include-dir-clean:
  file.absent:
    - name: {{ clean.path(mapdata, sup.include_dir) }}
    - require: {{ stopped | json }}
    - order: last

pgha-supervisord-runtime-files-clean:
  file.absent:
    - names:
      - {{ clean.path(mapdata, sup.socket) }}
      - {{ clean.path(mapdata, sup.pidfile) }}
    - require: {{ stopped | json }}
    - order: last

{{ clean.packages('pgha-supervisord-package-clean', mapdata, 'supervisord', ['supervisor'],
                  stopped + [{'file': 'pgha-supervisord-config-file-clean'}, {'file': 'pgha-supervisord-include-dir-clean'}],
                  order='last') }}

{{ clean.data('pgha-supervisord-log-dir-clean', mapdata, [sup.log_dir], stopped, order='last') }}
{%- else %}

pgha-supervisord-clean:
  test.nop:
    - name: {{ ('nothing to clean: the service manager is ' ~ mapdata.lookup.service_manager) | json }}
{%- endif %}
