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
{%- if mapdata.monitor.enabled %}

# The exporters' role (pgha:users:monitor): postgres_exporter logs in as it
# on each node, PgBouncer's console lets it SHOW; pg_monitor and nothing more.
pgha-postgresql-monitor-role-present:
  postgres_user.present:
    - name: {{ mapdata.users.monitor }}
    - password: {{ mapdata.secrets.monitor_password | json }}
    - encrypted: scram-sha-256
    - login: True
    - superuser: False
    - createdb: False
    - createroles: False
    - replication: False
    - groups: pg_monitor
{%-   for key, value in connection.items() %}
    - {{ key }}: {{ value | json }}
{%-   endfor %}
{%- endif %}
{%- if mapdata.pgbouncer.enabled %}

# PgBouncer's login (pgha:users:pooler) and the function it looks clients'
# SCRAM verifiers up with (auth_query): SECURITY DEFINER, executable by that
# role alone, never a superuser's verifier. PgBouncer runs its lookup in the
# database the client asks for: the function is made in postgres, the
# formula's database and template1 (so every database made later has it).
pgha-postgresql-pooler-role-present:
  postgres_user.present:
    - name: {{ mapdata.users.pooler }}
    - password: {{ mapdata.secrets.pooler_password | json }}
    - encrypted: scram-sha-256
    - login: True
    - superuser: False
    - createdb: False
    - createroles: False
    - replication: False
{%-   for key, value in connection.items() %}
    - {{ key }}: {{ value | json }}
{%-   endfor %}
{%-   set psql = 'psql -X -q -v ON_ERROR_STOP=1 -h ' ~ connection.db_host ~ ' -p ' ~ connection.db_port ~ ' -U ' ~ connection.db_user %}
{%-   for database in ['postgres', mapdata.probe.database, 'template1'] %}

pgha-postgresql-pooler-lookup-{{ database }}-present:
  cmd.run:
    - name: {{ psql }} -d {{ database }}
    # no row for a superuser, a role that cannot log in or an expired password: PgBouncer answers "no such user"
    - stdin: |
        BEGIN;
        DROP FUNCTION IF EXISTS public.pgha_pooler_lookup(text);
        CREATE FUNCTION public.pgha_pooler_lookup(i_username text, OUT uname name, OUT phash text)
        RETURNS SETOF record LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
          SELECT rolname, rolpassword FROM pg_catalog.pg_authid
          WHERE rolname = i_username AND rolcanlogin AND NOT rolsuper
            AND (rolvaliduntil IS NULL OR rolvaliduntil > now())
        $$;
        REVOKE ALL ON FUNCTION public.pgha_pooler_lookup(text) FROM PUBLIC;
        GRANT EXECUTE ON FUNCTION public.pgha_pooler_lookup(text) TO "{{ mapdata.users.pooler }}";
        COMMIT;
    - unless: {{ psql }} -d {{ database }} -Atc "SELECT 1 FROM pg_proc WHERE proname = 'pgha_pooler_lookup' AND prosecdef AND proretset" | grep -qx 1
    - env:
      - PGPASSWORD: {{ connection.db_password | json }}
    - require:
      - postgres_user: pgha-postgresql-pooler-role-present
      - postgres_database: pgha-postgresql-probe-database-present
{%-   endfor %}
{%- endif %}
