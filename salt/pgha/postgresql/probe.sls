# -*- coding: utf-8 -*-
# vim: ft=sls
# The formula's own PostgreSQL role (pgha:users:probe) and database
# (pgha:probe:database): health probes and drills log in as this role and
# write only there. Made on the current leader (found through Patroni), as
# the superuser. Applied by the orchestration once the cluster is healthy;
# not part of highstate (it acts on the cluster, not on this host).
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set leader = salt['patroni.leader']() %}
{%- if not leader %}
{{ raise("pgha: the probe role is made on the leader, and the cluster has no running leader now") }}
{%- endif %}
{%- set connection = {
      'db_host': mapdata.nodes[leader].address,
      'db_port': mapdata.postgresql.port,
      'db_user': mapdata.users.superuser,
      'db_password': mapdata.secrets.superuser_password,
      'maintenance_db': 'postgres',
    } %}

pgha-postgresql-probe-role-present:
  postgres_user.present:
    - name: {{ mapdata.users.probe }}
    - password: {{ mapdata.secrets.probe_password | json }}
    - encrypted: scram-sha-256
    - login: True
    - superuser: False
    - createdb: False
    - createroles: False
    - replication: False
{%- for key, value in connection.items() %}
    - {{ key }}: {{ value | json }}
{%- endfor %}

pgha-postgresql-probe-database-present:
  postgres_database.present:
    - name: {{ mapdata.probe.database }}
    - owner: {{ mapdata.users.probe }}
{%- for key, value in connection.items() %}
    - {{ key }}: {{ value | json }}
{%- endfor %}
    - require:
      - postgres_user: pgha-postgresql-probe-role-present
