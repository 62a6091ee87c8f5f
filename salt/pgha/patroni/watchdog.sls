# -*- coding: utf-8 -*-
# vim: ft=sls
# What Patroni's watchdog (pillar pgha:patroni:watchdog:mode, not off) needs
# on a systemd host: the kernel module (softdog by default) loaded now and at
# every boot, and the device owned by postgres, mode 0600 (a udev rule for
# the boots to come, a chown now). Nothing under supervisord (containers and
# the lab have no watchdog device to give) or with mode off.
{%- set tplroot = tpldir.split('/')[0] %}
{%- from tplroot ~ "/map.jinja" import mapdata with context %}
{%- set patroni = mapdata.lookup.patroni %}
{%- set watchdog = mapdata.patroni.watchdog %}
{%- set files = patroni.watchdog %}
{%- if watchdog.mode != 'off' and mapdata.lookup.service_manager == 'systemd' %}
{%-   set device = watchdog.device %}
{%-   set owner = patroni.user ~ ':' ~ patroni.group %}

pgha-patroni-watchdog-udev-rule-file-managed:
  file.managed:
    - name: {{ files.udev_rule_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): Patroni (user {{ patroni.user }}) opens the watchdog {{ device }}.
        KERNEL=="{{ device.split('/')[-1] }}", OWNER="{{ patroni.user }}", GROUP="{{ patroni.group }}", MODE="0600"
{%-   if files.kernel_module %}

pgha-patroni-watchdog-modules-load-file-managed:
  file.managed:
    - name: {{ files.modules_load_file }}
    - mode: '0644'
    - makedirs: True
    - contents: |
        # Managed by Salt (pgha): the watchdog of Patroni, loaded at boot.
        {{ files.kernel_module }}

pgha-patroni-watchdog-kmod-present:
  kmod.present:
    - name: {{ files.kernel_module }}
    - require:
      # the device it makes gets the rule's owner
      - file: pgha-patroni-watchdog-udev-rule-file-managed
    - require_in:
      - cmd: pgha-patroni-watchdog-device-owned
{%-   endif %}

pgha-patroni-watchdog-device-owned:
  cmd.run:
    - name: chown {{ owner }} {{ device }} && chmod 0600 {{ device }}
    - onlyif: test -c {{ device }}
    - unless: test "$(stat -L -c '%U:%G:%a' {{ device }})" = '{{ owner }}:600'
    - require:
      - file: pgha-patroni-watchdog-udev-rule-file-managed
{%- else %}

# (one state, so that the service can require this file)
pgha-patroni-watchdog-nothing-to-prepare:
  test.nop:
    - name: watchdog {{ watchdog.mode }} under {{ mapdata.lookup.service_manager }}
{%- endif %}
