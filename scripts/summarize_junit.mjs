// Sums JUnit XML reports (from `deno test --junit-path` and
// `bun test --reporter=junit`) and prints the plain total CI reads:
//   N passed, N failed
// Exits 1 when a test failed, a report is missing, or no test ran.
import { existsSync, readFileSync } from "node:fs";

let passed = 0;
let failed = 0;
let skipped = 0;
let missing = false;
for (const path of process.argv.slice(2)) {
  if (!existsSync(path)) {
    console.error(`summary: no report at ${path} (the suite did not finish)`);
    missing = true;
    continue;
  }
  const xml = readFileSync(path, "utf8");
  // Each <testcase> is one test; a failure or error child marks it failed, a
  // skipped child marks it skipped (never counted as passed).
  for (
    const match of xml.matchAll(
      /<testcase\b[^>]*?(\/>|>([\s\S]*?)<\/testcase>)/g,
    )
  ) {
    const body = match[2] ?? "";
    if (/<(failure|error)\b/.test(body)) failed++;
    else if (/<skipped\b/.test(body)) skipped++;
    else passed++;
  }
}
const line = `${passed} passed, ${failed} failed` +
  (skipped ? `, ${skipped} skipped` : "");
console.log(line);
process.exit(failed > 0 || missing || passed === 0 ? 1 : 0);
