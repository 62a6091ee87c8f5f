# -*- coding: utf-8 -*-
# vim: ft=sls
# The lab with each host in its own network namespace (`make lab`, the default;
# lab/netns.py), stacked last on the topology's files: the same hosts at
# 198.18.0.N instead of 127.0.0.N, each with its own network stack on the
# bridge pgha-br0, whose 198.18.0.1 is the Salt master's. Connections now come
# from their hosts' addresses (on loopback they all came from 127.0.0.1), so the
# formula's own pg_hba rules for the nodes suffice; the master is the one extra
# client (the runner's drills and checks). Only addresses differ: the states
# are the same.
pgha:
  nodes:
    postgres01:
      address: 198.18.0.15
    postgres02:
      address: 198.18.0.32
    postgres03:
      address: 198.18.0.6
    etcd:
      address: 198.18.0.5
    haproxy:
      address: 198.18.0.3
    backup:
      address: 198.18.0.8
    monitor:
      address: 198.18.0.9
  postgresql:
    client_networks:
      - 198.18.0.1/32
    pg_hba: []
  haproxy:
    bind_address: 198.18.0.3
    stats_bind_address: 198.18.0.3
