# mailstack: the two commands of the README are `make lab` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
export MAILSTACK_ROOT := $(CURDIR)
export ANSIBLE_HOME := $(CURDIR)/.cache/ansible
export XDG_CACHE_HOME := $(CURDIR)/.cache/xdg
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export PATH := $(CURDIR)/.venv/bin:$(PATH)
export PY_COLORS := 0
export ANSIBLE_FORCE_COLOR := 0

SCENARIO ?=
HOST ?=

.PHONY: help bootstrap lab lab-up lab-converge lab-status lab-stop lab-start lab-destroy lab-shell lab-test \
        test test-fast lint unit oracle molecule bench e2e

help:
	@echo "make lab         install what is needed, start the lab containers, converge site.yml"
	@echo "make test        lint + unit + oracle tests + every molecule scenario + the end-to-end suite"
	@echo "make test-fast   lint + unit tests (no containers)"
	@echo "make lab-status | lab-stop | lab-start | lab-destroy | lab-shell HOST=mx1"
	@echo "make e2e         the end-to-end suite on the lab (brought up and converged unless it is already)"
	@echo "make lab-test    the end-to-end suite on the running lab as it is"
	@echo "make molecule SCENARIO=roles/postfix   one scenario (a role dir or molecule/<name>)"
	@echo "make bench       the benchmarks of bench/ (tables into docs/benchmarks/README.md)"

bootstrap:
	@scripts/bootstrap

lab: bootstrap
	@scripts/lab up
	@scripts/lab converge

lab-up: bootstrap
	@scripts/lab up
lab-converge:
	@scripts/lab converge
lab-status:
	@scripts/lab status
lab-stop:
	@scripts/lab stop
lab-start:
	@scripts/lab start
lab-destroy:
	@scripts/lab destroy
lab-test:
	@scripts/run-tests suite
e2e: bootstrap
	@scripts/run-tests e2e
lab-shell:
	@scripts/lab shell $(HOST)

test: bootstrap
	@scripts/run-tests full

test-fast:
	@scripts/bootstrap >/dev/null
	@scripts/run-tests fast

lint:
	@scripts/run-tests lint
unit:
	@scripts/run-tests unit
oracle: bootstrap
	@scripts/run-tests oracle
molecule: bootstrap
	@scripts/run-tests molecule $(SCENARIO)

# The benchmarks (issue 15): each prints its table and writes its section of
# docs/benchmarks/README.md. smtp_acceptance makes and converges its own container (network
# bench-smtp, 172.31.19.0/24), measures with one message per connection, then again (--reuse) with
# kept connections on two cells, and removes it; BENCH_ARGS goes to the first run (e.g. --quick).
# A third run (--relay, its own container) measures the relay profile's tunings, each set back alone.
# Then the lab ones: provisioning rebuilds the lab from nothing (cold site.yml), times no-change
# runs and a relay added and removed, and leaves the lab converged; fanout posts to the lab's lists
# of 10, 1,000 and 10,000 members with the lab's own settings, then with one change at a time
# (1 and 2 of the 3 relays serving, Mailman's max_recipients 100, its runners' sleep 0.1 s); each
# change converges the back-ends again, and the lab's own settings come back at the end.
BENCH_ARGS ?=
bench: bootstrap
	@python bench/filters.py
	@python bench/smtp_acceptance.py --keep $(BENCH_ARGS)
	@python bench/smtp_acceptance.py --reuse --kept-connection --quick --no-ablation
	@python bench/smtp_acceptance.py --relay
	@python bench/provisioning.py
	@scripts/lab ensure
	@python bench/fanout.py --relays 1,2 --max-recipients 100 --runner-sleep 0.1s
	@python bench/members.py
	@python bench/mailman_profile.py
