# -*- coding: utf-8 -*-
# vim: ft=sls
# The production topology with a three-member etcd, stacked on
# pgha/production.sls (pillar/top.sls: set `stack` to both files): etcd runs
# on the etcd host and also on postgres01 and postgres02. Any one member (or
# the host it shares with PostgreSQL) can be lost and a quorum of two keeps
# the DCS answering, so Patroni keeps its leader key and writes go on.
#
# The members' certificates (pgha:etcd:tls) are issued for each member's
# address; the co-located members get the etcd role's secrets too (etcd's
# root password), which the dedicated etcd host alone holds in the seed's
# topology: with three dedicated etcd hosts instead, give those hosts the
# etcd role and leave the PostgreSQL hosts as they are.
pgha:
  nodes:
    postgres01:
      roles: [postgresql, etcd]
    postgres02:
      roles: [postgresql, etcd]
