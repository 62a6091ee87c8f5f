{#- The secrets of an etcd node: etcd's access control (root) and the users it makes (Patroni's, the lock's). #}
{%- from 'pgha/secrets/pick.jinja' import pick %}
{%- import_yaml 'pgha_secrets.yaml' as given %}
{{ pick(given, ['etcd_root_password', 'etcd_patroni_password', 'etcd_lock_password']) }}
