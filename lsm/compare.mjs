// How the lane judges: each runtime's answer for a scenario against the C
// ground truth (lsmtool) — the same bytes minus exactly one NUL where the
// kernel counted one, the same errno, the label the peer process really has —
// plus the CLI's answers, the JUnit file and the benchmark report.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { results } from "./common.mjs";

export const ERRNO_NAMES = {
  92: "ENOPROTOOPT",
  95: "EOPNOTSUPP",
  107: "ENOTCONN",
  61: "ENODATA",
  22: "EINVAL",
  9: "EBADF",
  88: "ENOTSOCK",
};
export const printable = (text) =>
  text.length > 90
    ? `${text.slice(0, 60)}…(${text.length} chars)…${text.slice(-20)}`
    : text;

/** The kernel's answer as text: its bytes minus exactly one trailing NUL. */
export function truthText(truth) {
  const hex = truth.hex.endsWith("00") && truth.hex.length % 2 === 0
    ? truth.hex.slice(0, -2)
    : truth.hex;
  return { hex, text: Buffer.from(hex, "hex").toString("utf8") };
}

/** Every check for one runtime's answer to one scenario; returns problems. */
export function check(lsm, scenario, truth, answer) {
  const problems = [];
  const expect = (condition, what, expected, actual) => {
    if (!condition) {
      problems.push(
        `${what}\n      expected: ${
          printable(JSON.stringify(expected))
        }\n      actual:   ${printable(JSON.stringify(actual))}`,
      );
    }
  };
  if (!answer) return ["no answer (the runtime did not print this scenario)"];
  if (answer.failure) return [`the scenario failed: ${answer.failure}`];
  if (truth.setupErrno !== undefined) {
    return [`lsmtool could not make this fd: errno ${truth.setupErrno}`];
  }
  const accepted = truth.clientPid !== undefined;
  // What getPeerInfo must say besides the label: a TCP peer never has
  // credentials; an accepted UNIX peer has the client's.
  const checkInfo = (expectedLabel) => {
    const info = answer.info.value;
    expect(
      info?.securityContext === expectedLabel,
      "getPeerInfo().securityContext",
      expectedLabel,
      answer.info,
    );
    if (scenario.tcp) {
      expect(
        info?.credentials === null && info?.groups === null,
        "getPeerInfo() of a TCP peer: no credentials, no groups",
        { credentials: null, groups: null },
        info,
      );
      expect(
        answer.identity.error === "ENODATA",
        "getPeerIdentity() of a TCP peer: ENODATA",
        "ENODATA",
        answer.identity,
      );
    } else if (accepted) {
      expect(
        info?.credentials?.pid === answer.clientPid,
        "getPeerInfo().credentials.pid is the client's",
        answer.clientPid,
        info?.credentials,
      );
    }
  };
  if (truth.errno !== 0) {
    const code = ERRNO_NAMES[truth.errno] ?? `errno ${truth.errno}`;
    expect(
      answer.label.error === code,
      "getPeerSecurityContext's error",
      code,
      answer.label,
    );
    expect(
      answer.tryLabel.value === null || answer.tryLabel.error === code,
      "tryGetPeerSecurityContext",
      code === "ENOPROTOOPT" ? null : code,
      answer.tryLabel,
    );
    if (code === "ENOPROTOOPT") checkInfo(null);
    if (scenario.expectLabel) {
      expect(
        false,
        "the kernel's label (what the scenario is there to show)",
        scenario.expectLabel,
        code,
      );
    }
    return problems;
  }
  const { hex: expectedHex, text: expectedText } = truthText(truth);
  if (scenario.longerThan) {
    expect(
      truth.len > scenario.longerThan,
      `the kernel's label is longer than ${scenario.longerThan} bytes (so the growth loop ran)`,
      `> ${scenario.longerThan}`,
      truth.len,
    );
  }
  if (scenario.emptyLabel) {
    expect(
      expectedHex === "",
      "the kernel answers with an empty label",
      "",
      expectedText,
    );
  }
  if (scenario.expectLabel) {
    expect(
      expectedText === scenario.expectLabel,
      "the kernel's label (what the scenario is there to show)",
      scenario.expectLabel,
      expectedText,
    );
  }
  if (expectedHex === "") {
    expect(
      answer.tryLabel.value === null,
      "an empty label reads as null",
      null,
      answer.tryLabel,
    );
    expect(
      answer.label.error === "ERR_EMPTY_LABEL",
      "getPeerSecurityContext of an empty label",
      "ERR_EMPTY_LABEL",
      answer.label,
    );
    checkInfo(null);
    return problems;
  }
  expect(
    answer.bytes.value === expectedHex,
    "getPeerSecurityContextBytes equals the kernel's bytes minus one NUL",
    expectedHex,
    answer.bytes,
  );
  expect(
    answer.label.value === expectedText,
    "getPeerSecurityContext",
    expectedText,
    answer.label,
  );
  expect(
    answer.tryLabel.value === expectedText,
    "tryGetPeerSecurityContext",
    expectedText,
    answer.tryLabel,
  );
  checkInfo(expectedText);
  if (
    scenario.kind === "socketpair" || scenario.kind === "accept" ||
    scenario.peerLabelIsProcess
  ) {
    expect(
      answer.procLabel === expectedText,
      "the peer's /proc/<pid>/attr/current (minus its newline)",
      expectedText,
      answer.procLabel,
    );
  }
  if (accepted && !scenario.tcp) {
    expect(
      truth.pid === truth.clientPid,
      "ground truth: SO_PEERCRED names lsmtool's client",
      truth.clientPid,
      truth.pid,
    );
    const identity = answer.identity.value;
    expect(
      identity?.pid === answer.clientPid,
      "getPeerIdentity().pid is the client's",
      answer.clientPid,
      identity?.pid,
    );
    if (scenario.kind === "inherit") {
      expect(
        answer.clientPid === truth.clientPid,
        "the inherited fd's client is the one lsmtool started",
        truth.clientPid,
        answer.clientPid,
      );
    }
    expect(
      identity?.uid === 0 && identity?.gid === 0,
      "getPeerIdentity() uid/gid (the guest runs as root)",
      [0, 0],
      [identity?.uid, identity?.gid],
    );
    expect(
      identity?.securityContext === expectedText,
      "getPeerIdentity().securityContext",
      expectedText,
      identity?.securityContext,
    );
  }
  if (lsm === "selinux" && expectedText.includes(":")) {
    const parsed = answer.parsed?.selinux?.value;
    const [user, role, type] = expectedText.split(":");
    expect(
      parsed?.user === user && parsed?.role === role && parsed?.type === type,
      "parseSELinuxContext accepts the real label",
      { user, role, type },
      answer.parsed?.selinux,
    );
  }
  if (lsm === "apparmor") {
    const parsed = answer.parsed?.apparmor?.value;
    // The lane's profiles are all in the root namespace.
    const expectedProfiles = expectedText.replace(/ \([a-z]+\)$/, "").split(
      "//&",
    ).map((name) => ({ namespace: null, name }));
    expect(
      JSON.stringify(parsed?.profiles) === JSON.stringify(expectedProfiles),
      "parseAppArmorLabel accepts the real label",
      expectedProfiles,
      answer.parsed?.apparmor,
    );
  }
  return problems;
}

/** `peersec self --json` (Bun) must see what the kernel gives a socketpair. */
export function checkSelf(lsm, self, pairTruth, stderr) {
  if (!self) return [`no output: ${stderr ?? ""}`];
  const problems = [];
  const pairLabel = pairTruth?.errno === 0 ? truthText(pairTruth).text : null;
  if (!self.securityModules?.includes(lsm)) {
    problems.push(
      `security modules ${JSON.stringify(self.securityModules)} lack ${lsm}`,
    );
  }
  if (self.socketLabel !== (pairLabel || null)) {
    problems.push(
      `socketLabel ${JSON.stringify(self.socketLabel)}, the kernel gave ${
        JSON.stringify(pairLabel)
      }`,
    );
  }
  if (self.labelsAvailable !== Boolean(pairLabel)) {
    problems.push(
      `labelsAvailable ${self.labelsAvailable} (verdict: ${self.verdict})`,
    );
  }
  return problems;
}

/**
 * `peersec probe host:port --json` (Bun) against a labeled TCP listener must
 * say what lsmtool read as a client of the same listener.
 */
export function checkProbe(probe, truth, stderr) {
  if (!probe) return [`no output: ${stderr ?? ""}`];
  if (!truth) return ["no ground truth for the probed listener"];
  const { text } = truthText(truth);
  const expected = truth.errno !== 0
    ? { label: null, labelError: ERRNO_NAMES[truth.errno] ?? truth.errno }
    : text === ""
    ? { label: null, labelError: "ERR_EMPTY_LABEL" }
    : { label: text, labelError: null };
  const actual = {
    label: probe.label ?? null,
    labelError: probe.labelError ?? probe.error ?? null,
  };
  return JSON.stringify(actual) === JSON.stringify(expected) &&
      probe.transport === "tcp"
    ? []
    : [
      `peersec probe said ${printable(JSON.stringify(probe))}, the kernel ${
        printable(JSON.stringify(expected))
      }`,
    ];
}

export function junit(cases) {
  const escape = (text) =>
    text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
      ">",
      "&gt;",
    ).replaceAll('"', "&quot;");
  const body = cases.map(({ name, problems }) =>
    problems.length === 0
      ? `  <testcase classname="lsm" name="${escape(name)}"/>`
      : `  <testcase classname="lsm" name="${
        escape(name)
      }">\n    <failure message="${escape(problems[0].split("\n")[0])}">${
        escape(problems.join("\n"))
      }</failure>\n  </testcase>`
  );
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites>\n<testsuite name="lsm">\n${
    body.join("\n")
  }\n</testsuite>\n</testsuites>\n`;
}

/** Ratios to C on a real label, from the SELinux guest (a report, not a test). */
export function labelBenchmark(files) {
  const parse = (name) => {
    const line = (files[name] ?? "").split("\n").find((text) =>
      text.startsWith("{")
    );
    return line ? JSON.parse(line) : null;
  };
  const median = (values) =>
    [...values].sort((a, b) => a - b)[values.length >> 1];
  const c = parse("bench-c.json");
  if (!c) return `label benchmark: no C floor (${files["bench.err"] ?? ""})`;
  const lines = [
    "",
    "benchmark on a real SELinux label, inside the guest (software emulation: ratios only):",
    `  C floor: getsockopt(SO_PEERCRED) ${median(c.credentials)} ns, ` +
    `getsockopt(SO_PEERSEC) → ${c.labelResult} bytes ${median(c.label)} ns`,
  ];
  const ratio = (value, floor) => (value / floor).toFixed(2);
  for (const runtime of ["deno", "bun"]) {
    const result = parse(`bench-${runtime}.json`);
    if (!result) {
      lines.push(`  ${runtime}: no result`);
      continue;
    }
    lines.push(
      `  ${runtime}: label ${JSON.stringify(result.labelResult)}; ` +
        `getPeerCredentials ${
          ratio(median(result.credentials), median(c.credentials))
        }× C ` +
        `(bare FFI ${
          ratio(median(result.bare.credentials), median(c.credentials))
        }×, fastest shape ${
          result.fastest
            ? ratio(median(result.fastest.credentials), median(c.credentials))
            : "—"
        }×), ` +
        `tryGetPeerSecurityContext, decode included, ${
          ratio(median(result.label), median(c.label))
        }× C ` +
        `(bare FFI, no decode, ${
          ratio(median(result.bare.label), median(c.label))
        }×, fastest shape ${
          result.fastest
            ? ratio(median(result.fastest.label), median(c.label))
            : "—"
        }×)`,
    );
  }
  writeFileSync(
    join(results, "lsm-bench.json"),
    JSON.stringify({
      c,
      deno: parse("bench-deno.json"),
      bun: parse("bench-bun.json"),
    }) + "\n",
  );
  return lines.join("\n");
}
