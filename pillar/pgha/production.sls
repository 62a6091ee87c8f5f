# -*- coding: utf-8 -*-
# vim: ft=sls
# The seed's cluster on five real hosts (Debian 12, systemd). Addresses are
# the seed's; replace them with yours. Passwords do not belong here: put them
# in a pillar file kept out of git (pillar/pgha_secrets.sls, see
# pillar/pgha_secrets.sls.example) or encrypt them with Salt's GPG renderer.
pgha:
  nodes:
    postgres01:
      address: 10.131.0.15
      roles: [postgresql]
    postgres02:
      address: 10.131.0.32
      roles: [postgresql]
    postgres03:
      address: 10.131.0.6
      roles: [postgresql]
    etcd:
      address: 10.131.0.5
      roles: [etcd]
    haproxy:
      address: 10.131.0.3
      roles: [haproxy]
    # pgBackRest's repository host: WAL archived from whichever node leads,
    # backups on the schedule below (docs/how-to/backup.md).
    backup:
      address: 10.131.0.9
      roles: [backup]
    # Prometheus and Alertmanager; with them every host runs the exporters
    # (docs/how-to/monitoring.md).
    monitor:
      address: 10.131.0.10
      roles: [monitor]
  cluster:
    scope: postgres
    namespace: /db/
    bootstrap_leader: postgres01
  etcd:
    token: etcd-cluster
    # Patroni logs in to etcd with a user limited to the cluster's keys.
    auth:
      enabled: true
    # etcd over https, clients and peers. Your PKI places the CA on the etcd
    # and PostgreSQL hosts, and each etcd host's certificate (for its address)
    # and key, at these paths, before the states run.
    tls:
      enabled: true
      ca_file: /etc/pgha/pki/etcd-ca.crt
      cert_file: /etc/pgha/pki/etcd.crt
      key_file: /etc/pgha/pki/etcd.key
  postgresql:
    # The applications' networks; the seed allowed 0.0.0.0/0.
    client_networks:
      - 10.131.0.0/24
    # TLS from your PKI, placed before the states run (docs/how-to/tls.md);
    # every client and every replication stream must use it.
    tls:
      enabled: true
      require_clients: true
      require_replication: true
  patroni:
    # https for the REST API, with the nodes' PostgreSQL certificates
    restapi_tls: true
    # Patroni from PyPI, pinned, in /opt/pgha/patroni on each PostgreSQL node
    # (hosts without PyPI: lookup:patroni:pip:index_url or wheel_dir).
    version: '4.1.5'
    # The seed's timings.
    ttl: 30
    loop_wait: 10
    retry_timeout: 10
    maximum_lag_on_failover: 1048576
    # Synchronous replication: no acknowledged commit is lost at failover, at
    # the cost of commit latency. In strict mode writes block while no
    # synchronous replica is left; without it the primary then writes alone.
    synchronous_mode: false
    synchronous_mode_strict: false
    # The leader stays primary while etcd is unreachable, as long as every
    # member answers it (docs/explanation/failsafe-watchdog.md).
    failsafe_mode: true
    # softdog loaded at boot, /dev/watchdog given to postgres: a leader whose
    # Patroni hangs is reset before its leader key expires.
    watchdog:
      mode: automatic
      device: /dev/watchdog
      safety_margin: 5
  haproxy:
    bind_address: '*'
    # The stats page only on the HAProxy host's own address, behind a password.
    stats_bind_address: 10.131.0.3
  backup:
    # Your PKI places pgBackRest's CA, certificate (CN the minion id, the
    # address as an IP and a DNS name) and key on the backup host and every
    # PostgreSQL host at backup:tls's paths (defaults in docs/reference/pillar.md).
    retention:
      full: 4
      diff: 7
    schedule:
      full: 'Sun 01:00'
      diff: 'Mon..Sat 01:00'
      incr: '*:30'
    archive_timeout: 60
  monitor:
    # The exporters over https: each host's certificate (monitor:tls:cert_file
    # and key_file) and the CA on the monitor host (docs/how-to/tls.md).
    tls:
      enabled: true
    # Where alerts go: Alertmanager's receivers (docs/how-to/monitoring.md).
    alertmanager:
      route:
        receiver: dba-webhook
        group_by: [alertname, scope]
      receivers:
        - name: dba-webhook
          webhook_configs:
            - url: http://10.131.0.10:5001/alerts
  drill:
    # The drill moves the leader: turn it off for runs that only apply changes.
    enabled: true
    mode: stop
