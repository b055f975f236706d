#!/usr/bin/env bash
# `npm test`: static checks, then the suite under Deno and under Bun, then one
# total line over all suites ("N passed, N failed").
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH" NO_COLOR=1
results=.test-results
rm -rf "$results" && mkdir -p "$results"
status=0

step() {
  echo "== $*"
  "$@" || { echo "FAILED: $*"; status=1; }
}

step deno fmt --check
step deno lint
step deno check mod.ts cli.ts tests/
# bun-types (compilerOptions.types) names `bun:` modules deno doc cannot
# resolve; its warnings about them are noise, anything else is shown.
doc_lint() {
  deno doc --lint mod.ts 2>&1 |
    awk '/^Warning Failed resolving types/ { skip = 1; next }
         skip && /^    at / { skip = 0; next }
         { skip = 0; print }'
  return "${PIPESTATUS[0]}"
}
step doc_lint
step deno test --allow-all --junit-path="$results/deno.xml" tests/
step bun test ./tests/ --reporter=junit --reporter-outfile="$results/bun.xml"

echo "== total over all suites"
node scripts/summarize_junit.mjs "$results/deno.xml" "$results/bun.xml" || status=1
exit "$status"
