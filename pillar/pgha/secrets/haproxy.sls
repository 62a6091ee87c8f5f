{#- The secret of an HAProxy node: its stats page's password (its checks of Patroni's REST API need none). #}
{%- from 'pgha/secrets/pick.jinja' import pick %}
{%- import_yaml 'pgha_secrets.yaml' as given %}
{{ pick(given, ['haproxy_stats_password']) }}
