# pgha: the two commands of the README's quick start, and their parts.
# Run as root on Debian 12.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# Patroni comes from PyPI into a virtualenv per host (the formula installs it;
# python3-venv makes the virtualenv), not from Debian (3.0.2, too old).
# Monitoring (role monitor and the exporters): Prometheus 2.42, Alertmanager 0.25 and the exporters, Debian's.
DEB_PACKAGES := postgresql-15 python3-venv etcd-server etcd-client haproxy pgbouncer postgresql-client supervisor openssl pgbackrest iproute2 nftables \
	prometheus prometheus-alertmanager prometheus-node-exporter prometheus-postgres-exporter prometheus-pgbouncer-exporter

.PHONY: lab lab-down lab-clean lab-status test unit bench deps venv lint docs

# make lab LAB_NETWORK=loopback: every host on 127.0.0.N in one network stack instead of a namespace each (docs/tutorials/lab.md).
# make lab TOPOLOGY=ha: the three-member etcd (docs/tutorials/topologies.md); a lab keeps its topology until TOPOLOGY= names another (etcd members join or leave).
lab: deps venv
	$(VENV)/bin/python -m lab up

lab-down:
	@if [ -x $(VENV)/bin/python ]; then $(VENV)/bin/python -m lab down; else $(PYTHON) -m lab down; fi

lab-clean:
	@if [ -x $(VENV)/bin/python ]; then $(VENV)/bin/python -m lab clean; else $(PYTHON) -m lab clean; fi

lab-status:
	$(VENV)/bin/python -m lab status

# The unit and functional tiers run beside the integration tier (tests/run).
test: deps venv
	PYTHON=$(VENV)/bin/python bash tests/run

unit: venv
	$(VENV)/bin/python -m pytest tests/unit -ra

bench: deps venv
	$(VENV)/bin/python -m bench

lint: venv
	$(VENV)/bin/ruff check _modules _states _runners _utils lab tests bench docs

# The manual's generated pages (docs/reference/pillar.md, commands.md,
# modules.md) and pillar.example, from defaults.yaml and the docstrings.
docs: venv
	$(VENV)/bin/python -m docs

# Debian packages: apt-get only when one is missing. Installing must not start
# the distribution's services (Patroni runs PostgreSQL; the formula starts the rest):
# without systemd, a policy-rc.d that refuses every start while apt runs.
deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  policy=/usr/sbin/policy-rc.d; made=; \
	  if [ ! -e $$policy ]; then printf '#!/bin/sh\nexit 101\n' > $$policy; chmod 755 $$policy; made=1; fi; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; status=$$?; \
	  if [ -n "$$made" ]; then rm -f $$policy; fi; \
	  exit $$status; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --disable-pip-version-check -r requirements.txt
	touch $@
