# The two commands a newcomer needs (see README.md).
PYTHON ?= python3
DEMO ?= /tmp/gradeflow-demo

.PHONY: setup image demo test
setup:
	bash .ci/setup

## the grader image for the podman sandbox (cached: a no-op when nothing changed)
image: setup
	bash images/grader/build.sh

## set everything up, build the example course and grade it, sandboxed and in parallel
demo: setup
	$(PYTHON) examples/make_course.py $(DEMO) --force --with-malformed
	gradeflow grade $(DEMO) ps1

## run the whole test suite (sandbox, S3, Argo-contract, container and browser tiers included)
test: setup image
	$(PYTHON) -m pytest -ra
