{#- The secrets of an HAProxy node: its stats page's password (its checks of Patroni's REST
    API need none) and, with PgBouncer, the pooler role's, which looks clients up,
    and with monitoring the exporters' role (PgBouncer's stats user). #}
{%- from 'pgha/secrets/pick.jinja' import pick %}
{%- import_yaml 'pgha_secrets.yaml' as given %}
{{ pick(given, ['haproxy_stats_password', 'pooler_password', 'monitor_password']) }}
