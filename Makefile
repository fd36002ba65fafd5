# vrdma. The two commands the README promises: `make demo` and `make test`. Both install what
# is missing (Debian packages) before they start.
SHELL := /bin/bash
SWIFT ?= swift
BIN = $(shell $(SWIFT) build --show-bin-path 2>/dev/null)

.PHONY: all build demo test e2e fuzz bench clean deps

all: build

deps:
	@scripts/ensure-deps.sh linux-libc-dev libibverbs-dev pkg-config

build: deps
	$(SWIFT) build

demo: build
	@scripts/demo.sh "$(BIN)"

test: deps
	$(SWIFT) build
	@scripts/run-tests.sh

# Real QEMU (built from Debian's source with our patch) and real Debian guests under TCG.
e2e: build
	@testbed/e2e.sh "$(BIN)"

fuzz: build
	@scripts/fuzz.sh $(or $(SECONDS),60)

# Benchmarks: device figures as ratios of baselines measured in the same run (build/bench/).
bench: deps
	$(SWIFT) build -c release
	@scripts/bench.sh "$$($(SWIFT) build -c release --show-bin-path)"

clean:
	rm -rf .build build
