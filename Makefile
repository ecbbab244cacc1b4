# pingpost: build, run the demo marketplace, test, lint.
#
#   make run      builds, starts the demo buyers in the background and the exchange in the
#                 foreground on 127.0.0.1:8080; Ctrl-C stops both.
#   make bench    the load tests of load-tests/ (release build; minutes, loopback only) and the
#                 eligibility benchmark; never part of `make test`.
#   make bench-reports
#                 seeds 1,000,000 sales into SQLite and PostgreSQL and times the revenue
#                 report (minutes; not part of `make test`). BENCH_ARGS passes options, e.g.
#                 BENCH_ARGS="--sales 100000 --sqlite-only"; see load-tests/RESULTS.md.
#
# Variables: CONFIG (default exchange.toml), CARGO, PINGPOST_BIN (the binary `run` starts),
# SCENARIOS and LOAD_ARGS (for `bench`, see load-tests/RESULTS.md).

CARGO ?= cargo
CONFIG ?= exchange.toml
TARGET_DIR := $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
PINGPOST_BIN ?= $(TARGET_DIR)/debug/pingpost

SCENARIOS ?= ten,hundred,tenk,tail,fallback,pg,nodes3,memory
LOAD_ARGS ?= --half-peak

.PHONY: build run test lint bench bench-reports clean

build:
	$(CARGO) build

# The shell stops the demo buyers whenever it exits: after `serve` returns, on Ctrl-C
# (`serve` shuts down gracefully first) and on SIGTERM.
run: build
	@demo=; \
	trap 'if [ -n "$$demo" ]; then kill "$$demo" 2>/dev/null; wait "$$demo" 2>/dev/null; fi' EXIT; \
	trap 'exit 130' INT; \
	trap 'exit 143' TERM; \
	"$(PINGPOST_BIN)" demo-buyers --config "$(CONFIG)" & demo=$$!; \
	sleep 1; \
	if ! kill -0 "$$demo" 2>/dev/null; then \
		echo "make run: the demo buyers did not start (see above)" >&2; exit 1; \
	fi; \
	"$(PINGPOST_BIN)" serve --config "$(CONFIG)"

test:
	$(CARGO) test --all-targets
	$(CARGO) test -p pingpost-load --lib

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench:
	$(CARGO) build --release -p pingpost -p pingpost-load
	$(TARGET_DIR)/release/load --pingpost $(TARGET_DIR)/release/pingpost --scenario $(SCENARIOS) $(LOAD_ARGS)
	$(CARGO) bench -p pingpost-load --bench eligibility

bench-reports:
	$(CARGO) run --release -p pingpost-load --bin bench-reports -- $(BENCH_ARGS)

clean:
	$(CARGO) clean
	rm -f pingpost.db pingpost.db-shm pingpost.db-wal
