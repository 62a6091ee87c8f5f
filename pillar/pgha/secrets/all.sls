{#- Every secret: for the Salt master only, which checks them all (salt-run pgha.validate,
    the orchestration's first stage) and runs the checks and drills (probe role, stats page). #}
{%- from 'pgha/secrets/pick.jinja' import pick %}
{%- import_yaml 'pgha_secrets.yaml' as given %}
{{ pick(given, ((given or {}).get('pgha') or {}).get('secrets', {}) | list) }}
