# -*- coding: utf-8 -*-
# vim: ft=sls
# The lab's second topology (`make lab TOPOLOGY=ha`), stacked on pgha.lab:
# the same five hosts, and etcd as a three-member cluster: the etcd host plus
# postgres01 and postgres02, each also an etcd member. Losing any one member
# (or the host it shares with PostgreSQL) leaves a quorum of two.
pgha:
  nodes:
    postgres01:
      roles: [postgresql, etcd]
    postgres02:
      roles: [postgresql, etcd]
