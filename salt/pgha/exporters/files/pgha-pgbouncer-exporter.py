#!/usr/bin/python3
# Managed by Salt (pgha). PgBouncer's metrics for Prometheus with Debian 12's
# prometheus-pgbouncer-exporter (1.7): its pools' and databases' collectors,
# without its SHOW STATS collector, which expects a column PgBouncer 1.8 and
# later no longer have (total_requests) and so stops the packaged exporter
# at start against Debian 12's PgBouncer 1.18. A connection per scrape (a
# PgBouncer restarted is found again), and pgbouncer_up 0 when it cannot
# connect. Settings from the environment: PGBOUNCER_HOST (its socket
# directory), PGBOUNCER_PORT, PGBOUNCER_USER (one of stats_users; the
# password from PGPASSFILE), HOST and PORT to listen on.
import os
import time

from prometheus_client import REGISTRY, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_pgbouncer_exporter.collectors import DatabasesCollector, PoolsCollector
from prometheus_pgbouncer_exporter.utils import get_connection


class PgBouncer:
    def collect(self):
        up = GaugeMetricFamily("pgbouncer_up", "Whether PgBouncer's console answered this scrape")
        try:
            connection = get_connection(os.environ["PGBOUNCER_USER"], os.environ["PGBOUNCER_PORT"],
                                        os.environ["PGBOUNCER_HOST"])
        except Exception:  # noqa: BLE001 (any failure to connect is PgBouncer down for this scrape)
            up.add_metric([], 0)
            yield up
            return
        try:
            for kind in (PoolsCollector, DatabasesCollector):
                yield from kind(connection=connection, databases=None).collect()
            up.add_metric([], 1)
        finally:
            connection.close()
        yield up


if __name__ == "__main__":
    REGISTRY.register(PgBouncer())
    start_http_server(int(os.environ["PORT"]), addr=os.environ["HOST"])
    while True:
        time.sleep(3600)
