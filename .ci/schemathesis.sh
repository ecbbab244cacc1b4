#!/usr/bin/env bash
# Keeps /openapi.json true: schemathesis (from PyPI, pinned) fuzzes the demo exchange through
# its own OpenAPI document and fails on a server error, a response that breaks the document,
# or an accepted request the document says is invalid.
#
# The demo marketplace (exchange.toml, buyers/) runs from a copy in a temporary directory,
# with a temporary SQLite database and a seller rate limit high enough that the fuzzer's
# requests reach validation instead of a 429. Every process started here is stopped on exit.
#
#   SCHEMATHESIS_PORT_OFFSET  added to every port of the demo (default 0: the exchange on
#                             127.0.0.1:8080, the demo buyers on 9101 and 9102)
#   SCHEMATHESIS_EXAMPLES     test cases per operation and phase (default 200)
# Extra arguments go to `schemathesis run` (e.g. --include-tag seller, --seed N).
set -euo pipefail

cd "$(dirname "$0")/.."

readonly schemathesis_version=4.32.5
readonly venv=.ci/.venv
readonly offset=${SCHEMATHESIS_PORT_OFFSET:-0}
readonly examples=${SCHEMATHESIS_EXAMPLES:-200}
# A bound on the run itself, should the fuzzer or the server hang.
readonly run_s_max=900
readonly port=$((8080 + offset))
readonly base_url="http://127.0.0.1:$port"
readonly wait_s=60

tmp=$(mktemp -d)
pids=()

fail() {
  echo "schemathesis: $*" >&2
  exit 1
}

cleanup() {
  local status=$?
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${pids[@]}"; do
    for _ in $(seq 50); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  if ((status != 0)); then
    for log in "$tmp"/*.log; do
      [[ -s $log ]] || continue
      echo "schemathesis: last lines of $(basename "$log"):" >&2
      tail -n 40 "$log" >&2
    done
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

# The pinned schemathesis in a venv of its own (ignored by git), installed once.
if [[ "$("$venv/bin/schemathesis" --version 2>/dev/null)" != *" $schemathesis_version" ]]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$schemathesis_version"
fi

if curl -fsS -o /dev/null --max-time 2 "$base_url/healthz" 2>/dev/null; then
  fail "something already answers on $base_url; stop it first or set SCHEMATHESIS_PORT_OFFSET"
fi

cargo build
bin="${CARGO_TARGET_DIR:-target}/debug/pingpost"

# The demo config, moved by the port offset, with room for the fuzzer under the rate limit.
cp -r exchange.toml buyers "$tmp/"
sed -i -E "s/^rate_per_s = [0-9]+/rate_per_s = 100000/" "$tmp/exchange.toml"
for file in "$tmp/exchange.toml" "$tmp"/buyers/*.toml; do
  perl -pi -e 's/127\.0\.0\.1:(\d+)/"127.0.0.1:" . ($1 + '"$offset"')/ge' "$file"
done
export PINGPOST_DATABASE_URL="sqlite://$tmp/schemathesis.db"

"$bin" demo-buyers --config "$tmp/exchange.toml" >"$tmp/demo-buyers.log" 2>&1 &
pids+=($!)
"$bin" serve --config "$tmp/exchange.toml" >"$tmp/serve.log" 2>&1 &
pids+=($!)

deadline=$((SECONDS + wait_s))
until curl -fsS -o /dev/null --max-time 2 "$base_url/readyz" 2>/dev/null; do
  for pid in "${pids[@]}"; do
    kill -0 "$pid" 2>/dev/null || fail "the demo exited before $base_url/readyz answered"
  done
  ((SECONDS < deadline)) || fail "$base_url/readyz did not answer within ${wait_s}s"
  sleep 0.5
done

echo "== schemathesis $schemathesis_version against $base_url/openapi.json =="
# Checks: every response is no 5xx, has a documented status, content type, headers and
# schema; a request the document calls invalid (negative data) or unauthenticated is
# refused; a wrong method is a 405 with Allow. Not positive_data_acceptance: a lead that
# fits the document's open `lead` object is rightly refused by the vertical's own schema.
# One worker: this Python's ast module is not safe to use from two threads at once
# (hypothesis then fails with "AST constructor recursion depth mismatch").
status=0
timeout "$run_s_max" "$venv/bin/schemathesis" --config-file .ci/schemathesis.toml run "$base_url/openapi.json" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,ignored_auth,missing_required_header,unsupported_method,allow_header_conformance \
  --phases examples,coverage,fuzzing,stateful \
  --max-examples "$examples" \
  --workers 1 \
  --request-timeout 10 \
  --generation-database none \
  --no-color \
  "$@" || status=$?

# A crash would show as refused connections at best: the demo must still be up.
for pid in "${pids[@]}"; do
  kill -0 "$pid" 2>/dev/null || fail "a demo process (pid $pid) died during the run"
done
if grep -q "panicked" "$tmp/serve.log" "$tmp/demo-buyers.log"; then
  fail "a demo process panicked during the run"
fi
((status == 0)) || fail "schemathesis found problems (exit $status); see above"
echo "schemathesis: ok"
