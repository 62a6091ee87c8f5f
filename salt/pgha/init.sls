# -*- coding: utf-8 -*-
# vim: ft=sls
# The pgha orchestration: `salt-run state.orchestrate pgha` on the master.
# etcd (its members following pillar), the backup node, the bootstrap
# leader, the replicas, etcd's authentication, HAProxy, the repository
# (stanza, check, first full backup) and monitoring (exporters, Prometheus,
# Alertmanager), each stage gated on a health check with a bounded wait,
# then the failover drill.
# (The formula's states for one minion are pgha.roles, applied by highstate.)
{%- if opts.get('__role') != 'master' %}
{{ raise("pgha: 'pgha' is the orchestration and runs on the master: `salt-run state.orchestrate pgha`. To configure this minion, run `state.apply` (highstate) or `state.apply pgha.roles`.") }}
{%- endif %}
{%- if not (pillar.get('pgha') or {}).get('nodes') %}
{{ raise("pgha: pillar pgha:nodes is empty for the master (" ~ opts.id ~ "): the orchestration needs the cluster's pillar; check the pillar top file targets the master too ('*').") }}
{%- endif %}
{#- The cluster's model (pgha_config.mapdata: _utils/pgha_model.py), as the master sees it: roles,
    the bootstrap leader, the replicas and every default come from there, never from raw pillar. #}
{%- set model = salt['pgha_config.mapdata']() %}
{%- set ids = model.nodes | sort %}
{%- set leader = model.cluster.bootstrap_leader %}

# The master loads the runner and modules from the formula's checkout
# (module_dirs); the minions get them from the file server (salt://_modules, ...).
pgha-orch-sync-minions:
  salt.function:
    - name: saltutil.sync_all
    - tgt: {{ ids | json }}
    - tgt_type: list
    - expect_minions: True
    - failhard: True

# Every minion checks the pillar it sees (the secrets of its own roles);
# the master checks every secret, and that its file server serves no pillar
# file and no file holding a secret.
pgha-orch-pillar-valid:
  salt.runner:
    - name: pgha.validate
    - tgt: {{ ids | json }}
    - tgt_type: list
    - failhard: True
    - require:
      - salt: pgha-orch-sync-minions

# One operation at a time: the orchestration holds the cluster's lock in etcd
# for its whole run (its runner steps share it; pgha:lock:wait seconds for
# another command's to end). A new cluster's etcd does not answer yet: the
# lock is then taken as soon as etcd is healthy (pgha-orch-lock-held).
pgha-orch-lock-taken:
  salt.runner:
    - name: pgha.lock
    - required: False
    - wait: {{ model.lock.wait }}
    - failhard: True
    - require:
      - salt: pgha-orch-pillar-valid

# What the hosts need beyond the pillar (etcd TLS files from the PKI, a
# Patroni of 3.1 or later), on every minion, before any state changes
# anything; each PostgreSQL node's Patroni version in its return.
pgha-orch-hosts-ready:
  salt.function:
    - name: pgha_host.check
    - tgt: {{ ids | json }}
    - tgt_type: list
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-lock-taken

# Patroni itself on every PostgreSQL node at once (PyPI's, pinned, or the
# package), before any service changes: a node that cannot get it (no PyPI,
# no wheels) stops the run while the cluster is untouched. It never restarts
# a running Patroni (see pgha.patroni.service).
pgha-orch-patroni-installed:
  salt.state:
    - tgt: {{ model.pg_nodes | json }}
    - tgt_type: list
    - sls: pgha.patroni.install
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-hosts-ready

# etcd's members follow pillar on a running cluster, one at a time with
# its health checked after each: new etcd nodes join (added, then started
# with the cluster as it is), members pillar dropped leave (removed, etcd
# stopped, data moved aside unless pgha:retire:purge_data). Nothing to do
# on a new cluster: the next stage starts every member.
pgha-orch-etcd-membership:
  salt.runner:
    - name: pgha.etcd_members
    - purge_data: {{ model.retire.purge_data | json }}
    - timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: pgha-orch-patroni-installed

pgha-orch-etcd-applied:
  salt.state:
    - tgt: {{ model.etcd_nodes | json }}
    - tgt_type: list
    - sls: pgha.etcd
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-etcd-membership

pgha-orch-etcd-healthy:
  salt.function:
    - name: etcd_cluster.wait_healthy
    - tgt: {{ model.etcd_nodes | first }}
    - kwarg:
        timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: pgha-orch-etcd-applied

pgha-orch-lock-held:
  salt.runner:
    - name: pgha.lock
    - wait: {{ model.lock.wait }}
    - failhard: True
    - require:
      - salt: pgha-orch-etcd-healthy

pgha-orch-etcd-members:
  salt.state:
    - tgt: {{ model.etcd_nodes | first }}
    - sls: pgha.etcd.members
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-lock-held

# A running cluster whose etcd is new or empty (every member lost its data):
# Patroni runs on the PostgreSQL nodes while etcd holds none of the
# cluster's keys. Access control first, then Patroni restarted on the node
# that was leading (it leads in the new etcd), then on the others; refused,
# touching nothing, when it cannot tell which node was leading. Nothing to
# do when etcd holds the cluster's keys, or on a stopped or new cluster.
pgha-orch-dcs-recovered:
  salt.runner:
    - name: pgha.dcs_recover
    - timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: pgha-orch-etcd-members

# Scaling in: Patroni members that pillar no longer lists as PostgreSQL
# nodes leave, one at a time (leadership moved away, HAProxy drained,
# Patroni stopped and disabled, gone from the member list); their data is
# kept unless pgha:retire:purge_data. Nothing to do on a new cluster.
pgha-orch-departed-retired:
  salt.runner:
    - name: pgha.retire
    - purge_data: {{ model.retire.purge_data | json }}
    - timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: pgha-orch-dcs-recovered

{%- set before_start = 'pgha-orch-departed-retired' %}
{%- if model.backup.enabled %}
# The backup node: pgBackRest's repository and its TLS server, and the
# backup schedule, before any PostgreSQL node starts: a standby's recovery
# reads the archive first, and a node archives to it once it leads.
pgha-orch-backup-applied:
  salt.state:
    - tgt: {{ model.backup.node }}
    - sls: pgha.backup
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-departed-retired
{%-   set before_start = 'pgha-orch-backup-applied' %}
{%- endif %}

# A stopped cluster (no member leads, nodes hold its data) is started on
# every node holding its data before a leader is awaited: its bootstrap
# leader alone may have been an asynchronous replica, which Patroni never
# lets lead after a full stop.
# Nothing to do on a running or a new cluster.
pgha-orch-stopped-members-started:
  salt.runner:
    - name: pgha.cold_start
    - timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: {{ before_start }}

pgha-orch-leader-applied:
  salt.state:
    - tgt: {{ leader }}
    - sls: pgha.postgresql
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-stopped-members-started

pgha-orch-leader-leads:
  salt.function:
    - name: patroni.wait_leader
    - tgt: {{ leader }}
    - kwarg:
        timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: pgha-orch-leader-applied
{%- if model.replicas %}

pgha-orch-replicas-applied:
  salt.state:
    - tgt: {{ model.replicas | json }}
    - tgt_type: list
    - sls: pgha.postgresql
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-leader-leads
{%- endif %}

pgha-orch-replicas-streaming:
  salt.function:
    - name: patroni.wait_healthy
    - tgt: {{ leader }}
    - kwarg:
        members: {{ model.pg_nodes | length }}
        max_lag: {{ model.gates.max_lag_bytes }}
        timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: pgha-orch-leader-leads

# The formula's probe role and database, on the leader: checks and drills
# use them, never the users' databases.
pgha-orch-probe-ready:
  salt.state:
    - tgt: {{ leader }}
    - sls: pgha.postgresql.probe
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-replicas-streaming

# etcd's users and authentication switch (pgha:etcd:auth), now that every
# Patroni carries its credentials.
pgha-orch-etcd-auth:
  salt.state:
    - tgt: {{ model.etcd_nodes | first }}
    - sls: pgha.etcd.auth
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-probe-ready

pgha-orch-haproxy-applied:
  salt.state:
    - tgt: {{ model.haproxy_nodes | json }}
    - tgt_type: list
    - sls: pgha.haproxy
    - expect_minions: True
    - failhard: True
    - require:
      - salt: pgha-orch-etcd-auth

pgha-orch-haproxy-routes-writes:
  salt.runner:
    - name: pgha.write_check
    - timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: pgha-orch-haproxy-applied
{%- set last_gate = 'pgha-orch-haproxy-routes-writes' %}
{%- if model.pgbouncer.enabled %}

# PgBouncer (on the HAProxy node) takes a write to the leader too.
pgha-orch-pooler-routes-writes:
  salt.runner:
    - name: pgha.write_check
    - path: pooler
    - timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: pgha-orch-haproxy-routes-writes
{%-   set last_gate = 'pgha-orch-pooler-routes-writes' %}
{%- endif %}
{%- if model.monitor.enabled %}

# Monitoring: every host's exporters, then (with a monitor node) Prometheus
# and Alertmanager; the gate: every scrape target known to Prometheus and
# up (HAProxy's endpoint came with its configuration, the exporters' role
# with the probe's).
pgha-orch-exporters-applied:
  salt.state:
    - tgt: {{ ids | json }}
    - tgt_type: list
    - sls: pgha.exporters
    - expect_minions: True
    - failhard: True
    - require:
      - salt: {{ last_gate }}
{%-   set last_gate = 'pgha-orch-exporters-applied' %}
{%-   if model.monitor.node %}

pgha-orch-monitor-applied:
  salt.state:
    - tgt: {{ model.monitor.node }}
    - sls: pgha.monitor
    - expect_minions: True
    - failhard: True
    - require:
      - salt: {{ last_gate }}

pgha-orch-monitor-targets-up:
  salt.runner:
    - name: pgha.monitor_ready
    - timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: pgha-orch-monitor-applied
{%-     set last_gate = 'pgha-orch-monitor-targets-up' %}
{%-   endif %}
{%- endif %}
{%- if model.backup.enabled %}

# The repository ready for the cluster: members whose archiving waits on a
# restart restarted (replicas first), the stanza created (a matching one
# kept), `pgbackrest check` passing (every PostgreSQL node reached, a WAL
# segment archived from the leader): the gate; a full backup when the
# repository holds none.
pgha-orch-backup-ready:
  salt.runner:
    - name: pgha.backup_ready
    - timeout: {{ model.gates.timeout }}
    - failhard: True
    - require:
      - salt: {{ last_gate }}
{%-   set last_gate = 'pgha-orch-backup-ready' %}
{%- endif %}
{%- if model.drill.enabled %}

pgha-orch-failover-drill:
  salt.runner:
    - name: pgha.failover_drill
    - mode: {{ model.drill.mode }}
    - failhard: True
    - require:
      - salt: {{ last_gate }}
{%-   set last_gate = 'pgha-orch-failover-drill' %}
{%- endif %}

# The lock given back (a failed run leaves it to expire within pgha:lock:ttl).
pgha-orch-lock-released:
  salt.runner:
    - name: pgha.unlock
    - require:
      - salt: {{ last_gate }}
