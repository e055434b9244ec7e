# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both start (or reuse) a local Postgres with pgvector and fetch the embedding model.

SHELL := /bin/bash
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: demo test db model build check fmt clippy bench bench-1m eval clean-db playground

# Prints DATABASE_URL=... as its last line; reuses $DATABASE_URL when set.
db:
	@./scripts/db.sh

model:
	@./scripts/model.sh

build:
	$(CARGO) build --release --locked

# The main job as far as it exists.
demo: model build
	@eval "$$(./scripts/db.sh | tail -n 1 | sed 's/^/export /')" && \
	  ./target/release/sentinel demo

# The whole product in a browser (docs/playground.md): ADDR=127.0.0.1:8080 by default.
playground: model build
	@eval "$$(./scripts/db.sh | tail -n 1 | sed 's/^/export /')" && \
	  ./target/release/sentinel playground --addr $${ADDR:-127.0.0.1:8080}

# Formatting, lints, then every test against a real Postgres and the real peers
# (promtool, Alertmanager) that scripts/test-deps.sh installs.
test: model
	@./scripts/test-deps.sh
	$(CARGO) fmt --check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	@eval "$$(SENTINEL_PG_BINARIES=1 ./scripts/db.sh | tail -n 1 | sed 's/^/export /')" && \
	  $(CARGO) test --locked -- --test-threads=$${TEST_THREADS:-4}

# Retrieval quality on the bundled evaluation set (query text only, then with alert names).
eval: model build
	@eval "$$(./scripts/db.sh sentinel_eval | tail -n 1 | sed 's/^/export /')" && \
	  ./target/release/sentinel ingest tests/data/runbooks; [ $$? -le 1 ] && \
	  ./target/release/sentinel eval retrieval --queries tests/data/eval/kube-prometheus-alerts.jsonl --query-only --json && \
	  ./target/release/sentinel eval retrieval --queries tests/data/eval/kube-prometheus-alerts.jsonl --json

bench: model build
	@eval "$$(./scripts/db.sh | tail -n 1 | sed 's/^/export /')" && \
	  ./target/release/sentinel bench embed --texts tests/data/bench/chunks.jsonl --queries tests/data/bench/queries.jsonl --json && \
	  ./target/release/sentinel bench search --chunks 100000 --json && \
	  ./target/release/sentinel bench intake --json && \
	  ./target/release/sentinel bench storm --json && \
	  ./target/release/sentinel bench alert-latency --chunks 100000 --json && \
	  ./target/release/sentinel bench slack-ack --json

# The search bench at 1,000,000 chunks (fills a scratch database once: over an hour here).
bench-1m: model build
	@eval "$$(./scripts/db.sh | tail -n 1 | sed 's/^/export /')" && \
	  ./target/release/sentinel bench search --chunks 1000000 --json

fmt:
	$(CARGO) fmt

clippy:
	$(CARGO) clippy --all-targets -- -D warnings
