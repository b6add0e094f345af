# The two commands a newcomer needs (see README.md).
# Everything runs from a project venv, $(VENV), that .ci/setup makes with $(PYTHON): Debian's
# and Ubuntu's own Python has no pip and refuses one (PEP 668).
PYTHON ?= python3
VENV ?= .venv
# Per user: a shared /tmp folder would belong to whoever ran the demo first.
DEMO ?= $(HOME)/gradeflow-demo
export PYTHON VENV

.PHONY: setup setup-demo image demo test
## everything the tests need (apt as root, else the sudo line to run; pip into $(VENV))
setup:
	bash .ci/setup test

## only what the demo uses: bubblewrap and gradeflow
setup-demo:
	bash .ci/setup demo

## the grader image for the podman sandbox (cached: a no-op when nothing changed)
image: setup
	bash images/grader/build.sh

## set up what it needs, build the example course in $(DEMO) and grade it, sandboxed and in parallel
demo: setup-demo
	$(VENV)/bin/python examples/make_course.py $(DEMO) --force --with-malformed
	$(VENV)/bin/gradeflow grade $(DEMO) ps1

## run the whole test suite (sandbox, S3, Argo-contract, container and browser tiers included)
test: setup image
	$(VENV)/bin/python -m pytest -ra
