/**
 * The `peersec` command.
 *
 *     peersec [self] [--json]    self-check on a socketpair in this process
 *
 * Exit codes: 0 the check ran (whatever the verdict), 1 the library cannot run
 * here (platform, runtime, libc, Deno permission), 2 bad usage.
 *
 * @example
 * ```sh
 * deno run --allow-ffi --allow-read jsr:@peersec/peersec/cli self
 * ```
 *
 * @module
 */
import { PeerSecError } from "./src/errors.ts";
import { selfCheck, type SelfCheckReport } from "./src/self_check.ts";

const USAGE = `usage: peersec [self] [--json]

  self      (default) check what SO_PEERSEC returns on this machine, on a
            socketpair made in this process
  --json    print one JSON object instead of text
  --help    show this help

exit codes: 0 the check ran, 1 peersec cannot run here, 2 bad usage`;

function formatReport(report: SelfCheckReport): string {
  const lines = [
    `peersec self-check (${report.runtime}, ${report.libraryPath})`,
    `  security modules:      ${
      report.securityModules === null
        ? "unknown (/sys/kernel/security/lsm not readable)"
        : report.securityModules.join(", ") || "none"
    }`,
    `  this process's label:  ${
      report.processLabel ??
        `none (/proc/self/attr/current: ${report.processLabelError})`
    }`,
    `  SO_PEERSEC on a socketpair: ${
      report.socketLabel ?? report.socketError?.code
    }`,
    `verdict: ${report.verdict}`,
  ];
  return lines.join("\n");
}

/** Runs the CLI with the given arguments; returns the exit code. */
export function main(args: string[]): number {
  const json = args.includes("--json");
  const rest = args.filter((arg) => arg !== "--json");
  if (rest.includes("--help") || rest.includes("-h")) {
    console.log(USAGE);
    return 0;
  }
  const command = rest[0] ?? "self";
  if (command !== "self" || rest.length > 1) {
    console.error(`peersec: unknown arguments: ${rest.join(" ")}\n${USAGE}`);
    return 2;
  }
  try {
    const report = selfCheck();
    console.log(json ? JSON.stringify(report) : formatReport(report));
    return 0;
  } catch (error) {
    if (!(error instanceof PeerSecError)) throw error;
    if (json) {
      console.log(
        JSON.stringify({ error: error.code, message: error.message }),
      );
    } else {
      console.error(`peersec: ${error.message} [${error.code}]`);
    }
    return 1;
  }
}

if (import.meta.main) {
  const args = typeof Deno === "object" ? Deno.args : process.argv.slice(2);
  process.exitCode = main(args);
}
