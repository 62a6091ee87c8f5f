{#- The secrets of the backup node: the repository's passphrase (pgBackRest
    encrypts the backups it writes and decrypts what restores read). #}
{%- from 'pgha/secrets/pick.jinja' import pick %}
{%- import_yaml 'pgha_secrets.yaml' as given %}
{{ pick(given, ['backup_cipher_password']) }}
