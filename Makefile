# pgmove: two commands from a fresh clone do everything.
#   make demo   builds pgmove, starts the sandbox, migrates meta -> test under load, verifies
#   make test   every test, against real PostgreSQL servers
# Each installs what it needs first (scripts/install-deps; root for apt-get).

export PATH := /usr/local/go/bin:$(PATH)
GO      ?= go
BIN     := bin/pgmove

.PHONY: all build deps test unit fuzz demo bench bench-switchover bench-compare bench-catchup clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/pgmove

deps:
	scripts/install-deps

# The full suite: unit tests and integration tests on real servers (13..18).
test: deps
	$(GO) vet ./...
	FUZZTIME=3000x scripts/fuzz
	scripts/test

# Every fuzz target for FUZZTIME each (default 60s).
fuzz:
	scripts/fuzz

# Tests that need no server.
unit:
	$(GO) test -count=1 -short ./...

demo: deps build
	scripts/demo

bench: build
	PGMOVE_WITH_PGCOPYDB=1 scripts/install-deps
	scripts/bench

# The switch under load: pgbench -c 8 and a 10 ms probe through a real
# pgbouncer; switchover, rollback and an abandoned switchover (source 16,
# target 18). Arguments of scripts/bench go in BENCH_ARGS.
bench-switchover: deps
	scripts/bench -switchover $(BENCH_ARGS)

# The apply after a long copy (issue 18): pgbench -R through migrate on
# scale 100, 16 -> 18, the lag after the copy, the highest rate the apply
# sustains, binary and streaming on and off.
bench-catchup: build
	scripts/bench -catchup -scale 100 -runs 3 $(BENCH_ARGS)

# compare --checksum against count(*) on pgbench scale 50, PostgreSQL 15 -> 17.
bench-compare: build
	scripts/bench -compare -src 15 -dst 17 -scale 50 -runs 3

clean:
	rm -rf bin
