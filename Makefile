# vrdma. The two commands the README promises: `make demo` and `make test`. Both install what
# is missing (Debian packages) before they start.
SHELL := /bin/bash
SWIFT ?= swift
BIN = $(shell $(SWIFT) build --show-bin-path 2>/dev/null)

.PHONY: all build demo test fuzz bench clean deps

all: build

deps:
	@scripts/ensure-deps.sh linux-libc-dev

build: deps
	$(SWIFT) build

demo: build
	@scripts/demo.sh "$(BIN)"

test: deps
	$(SWIFT) build
	@scripts/run-tests.sh

fuzz: build
	@scripts/fuzz.sh $(or $(SECONDS),60)

clean:
	rm -rf .build build
