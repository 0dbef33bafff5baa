# nebula.storage: the two commands are `make demo` and `make test`.
SHELL := /bin/bash
.DEFAULT_GOAL := help
SCENARIO ?= default

.PHONY: help bootstrap test unit sanity lint molecule demo lab-image lab-down bench clean docs fixtures changelog oned-from-source

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

bootstrap:  ## install Debian packages (as root) and the pinned venv
	@scripts/bootstrap.sh

test:  ## every check; ends with "N passed, N failed"
	@scripts/test.sh

unit: bootstrap  ## unit and functional pytest only
	@TEST_ONLY=unit scripts/test.sh

sanity: bootstrap  ## ansible-test sanity
	@scripts/sanity.sh

lint: bootstrap  ## ansible-lint, production profile
	@.venv/bin/ansible-lint

molecule: bootstrap  ## one molecule scenario: make molecule SCENARIO=default
	@lab/molecule test -s $(SCENARIO)

demo:  ## bring up the lab and run site.yml against it
	@scripts/demo.sh

docs:  ## the HTML docs (antsibull-docs + Sphinx) in docs/build/html
	@scripts/docs.sh

fixtures:  ## fetch the test fixtures into .cache/fixtures (when ../shared/fixtures is absent)
	@scripts/fixtures.sh fetch

changelog: bootstrap  ## lint changelogs/fragments (release: antsibull-changelog release)
	@.venv/bin/antsibull-changelog lint

lab-image:  ## build (or reuse) the lab's base image
	@lab/image.sh

oned-from-source: bootstrap  ## rebuild oned 7.4.0 from the source tarball, run oned_lifecycle on it
	@lab/oned/from-source.sh

lab-down:  ## remove the lab's containers, networks and namespace
	@lab/down

bench: bootstrap  ## run every benchmark in benchmarks/
	@for b in benchmarks/bench_*.py; do echo "== $$b"; .venv/bin/python $$b || exit 1; done

clean: lab-down  ## remove build outputs and venvs
	rm -rf .venv .venv-sanity .venv-2.* .venv-sanity-2.* .build .cache docs/build docs/rst/collections
