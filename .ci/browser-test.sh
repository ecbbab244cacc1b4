#!/usr/bin/env bash
# Browser test of the finance dashboard: starts the demo marketplace (`make run`) on a
# temporary database, makes a few sales with curl, then drives /dashboard in headless
# Chromium (Debian's package, through playwright-core from tests/browser) and saves a
# screenshot to test-output/dashboard.png. Installs Chromium and the npm package if missing;
# every process started here is stopped on exit.
set -euo pipefail

cd "$(dirname "$0")/.."

readonly base_url=http://127.0.0.1:8080
readonly finance_key=demo-finance-key-0001
readonly wait_s=${BROWSER_WAIT_S:-120}

tmp=$(mktemp -d)
run_pid=

fail() {
  echo "browser-test: $*" >&2
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
    echo "browser-test: last lines of make run:" >&2
    tail -n 60 "$tmp/run.log" >&2
  fi
  rm -rf "$tmp"
  exit "$status"
}
trap cleanup EXIT

# What the test needs: Debian's Chromium, and playwright-core from the committed lock file.
if ! command -v chromium >/dev/null; then
  echo "browser-test: installing chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
command -v node >/dev/null || fail "node is needed (apt-get install nodejs npm)"
if [[ ! -d tests/browser/node_modules/playwright-core ]]; then
  (cd tests/browser && npm ci --no-audit --no-fund)
fi

if curl -fsS -o /dev/null --max-time 2 "$base_url/healthz" 2>/dev/null; then
  fail "something already answers on $base_url; stop it first"
fi

make build

set -m
PINGPOST_DATABASE_URL="sqlite://$tmp/demo.db" make run >"$tmp/run.log" 2>&1 </dev/null &
run_pid=$!
set +m

deadline=$((SECONDS + wait_s))
until curl -fsS -o /dev/null --max-time 2 "$base_url/healthz" 2>/dev/null; do
  kill -0 "$run_pid" 2>/dev/null || fail "make run exited before $base_url answered"
  ((SECONDS < deadline)) || fail "$base_url did not answer within ${wait_s}s"
  sleep 1
done

# Sales from both sellers, each lead with its own phone and email (buyers dedupe on them).
sold=0
for i in $(seq 10 29); do
  if ((i % 2)); then seller_key=demo-seller-acme-media-0001; else seller_key=demo-seller-bright-leads-0002; fi
  lead=$(printf '{"vertical":"auto_insurance","lead":{"zip":"331%02d","state":"FL","age":%d,"homeowner":true,"coverage":"full","first_name":"Test","last_name":"Lead","email":"lead%d@example.com","phone":"30555501%02d"}}' "$i" "$((20 + i))" "$i" "$i")
  answer=$(curl -fsS --max-time 10 "$base_url/v1/leads" \
    -H "Authorization: Bearer $seller_key" -H 'Content-Type: application/json' -d "$lead") ||
    fail "a direct post failed"
  if [[ $answer == *'"status":"sold"'* ]]; then
    sold=$((sold + 1))
    echo "$answer" >>"$tmp/sales"
  fi
done
echo "browser-test: $sold of 20 leads sold"
((sold > 0)) || fail "no lead was sold"

# Two of them returned, by whichever demo buyer bought each, so net margin differs from margin.
returned=0
for lead_id in $(grep -o '"lead_id":"lead_[0-9a-f]*"' "$tmp/sales" | cut -d'"' -f4 | head -n 2); do
  for buyer in buyers/*.toml; do
    buyer_key="demo-buyer-$(basename "$buyer" .toml)-key"
    if curl -fsS -o /dev/null --max-time 10 "$base_url/v1/returns" \
      -H "Authorization: Bearer $buyer_key" -H 'Content-Type: application/json' \
      -d "{\"lead_id\":\"$lead_id\",\"reason\":\"bad_phone\"}" 2>/dev/null; then
      returned=$((returned + 1))
      break
    fi
  done
done
echo "browser-test: $returned leads returned"

mkdir -p test-output
echo "== browser test (headless Chromium) =="
(cd tests/browser &&
  PINGPOST_URL=$base_url FINANCE_KEY=$finance_key SCREENSHOT="$PWD/../../test-output/dashboard.png" \
    node --test dashboard.test.mjs)
[[ -s test-output/dashboard.png ]] || fail "no screenshot was saved"
echo "browser-test: screenshot at test-output/dashboard.png"
