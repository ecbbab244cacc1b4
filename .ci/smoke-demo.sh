#!/usr/bin/env bash
# Smoke test of the demo marketplace: `make run` from this checkout, then the curl example
# between the README's demo-curl markers must get an offer with a payout.
# The database goes to a temporary directory; every process started here is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

readonly health_url=http://127.0.0.1:8080/healthz
readonly wait_s=${SMOKE_WAIT_S:-120}

tmp=$(mktemp -d)
run_pid=

fail() {
  echo "smoke-demo: $*" >&2
  exit 1
}

cleanup() {
  local status=$?
  if [[ -n $run_pid ]]; then
    # `make run` leads its own process group: make, its shell, serve and demo-buyers.
    kill -TERM -- "-$run_pid" 2>/dev/null || true
    for _ in $(seq 50); do
      kill -0 -- "-$run_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL -- "-$run_pid" 2>/dev/null || true
    wait "$run_pid" 2>/dev/null || true
  fi
  if ((status != 0)) && [[ -s $tmp/run.log ]]; then
    echo "smoke-demo: last lines of make run:" >&2
    tail -n 60 "$tmp/run.log" >&2
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

# The demo's curl command, from inside the ```sh block between the markers.
command=$(
  awk '/<!-- demo-curl:start -->/ { on = 1; next } /<!-- demo-curl:end -->/ { on = 0 } on' README.md |
    awk '/^```sh/ { block = 1; next } /^```/ { block = 0 } block'
)
[[ -n $command ]] || fail "README.md has no \`\`\`sh block between <!-- demo-curl:start --> and <!-- demo-curl:end -->"

if curl -fsS -o /dev/null --max-time 2 "$health_url" 2>/dev/null; then
  fail "something already answers on $health_url; stop it first"
fi

# Build first, so the wait below is for start-up only.
make build

# Job control gives `make run` a process group of its own, which cleanup stops as a whole.
set -m
PINGPOST_DATABASE_URL="sqlite://$tmp/demo.db" make run >"$tmp/run.log" 2>&1 </dev/null &
run_pid=$!
set +m

deadline=$((SECONDS + wait_s))
until curl -fsS -o /dev/null --max-time 2 "$health_url" 2>/dev/null; do
  kill -0 "$run_pid" 2>/dev/null || fail "make run exited before $health_url answered"
  ((SECONDS < deadline)) || fail "$health_url did not answer within ${wait_s}s"
  sleep 1
done

echo "smoke-demo: running the README's demo curl"
response=$(bash -euo pipefail -c "$command") || fail "the README's curl command failed"
echo "$response"

offer_check='.status == "offer" and (.payout | type == "string" and length > 0)'
if command -v jq >/dev/null; then
  jq -e "$offer_check" >/dev/null <<<"$response" || fail "expected an offer with a payout"
else
  python3 -c '
import json, sys
answer = json.load(sys.stdin)
payout = answer.get("payout")
sys.exit(0 if answer.get("status") == "offer" and isinstance(payout, str) and payout else 1)
' <<<"$response" || fail "expected an offer with a payout"
fi
echo "smoke-demo: ok"
