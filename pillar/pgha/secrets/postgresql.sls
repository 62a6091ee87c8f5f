{#- The secrets of a PostgreSQL node: Patroni's config.yml (REST API, replication,
    superuser, etcd login), the post-bootstrap script (admin), the probe state
    (superuser; the probe's, the pooler's and the exporters' roles), postgres_exporter's
    login (monitoring on). #}
{%- from 'pgha/secrets/pick.jinja' import pick %}
{%- import_yaml 'pgha_secrets.yaml' as given %}
{{ pick(given, ['superuser_password', 'replication_password', 'admin_password', 'restapi_password',
                'probe_password', 'etcd_patroni_password', 'pooler_password', 'monitor_password',
                'backup_cipher_password']) }}
