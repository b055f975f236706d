// Boots one guest under qemu (software emulation, bounded by timeout) and
// collects the files its init prints between markers on the serial console.
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { cache, fail } from "./common.mjs";

export function boot(lsm, vmlinux, cpio, cmdline) {
  const console_ = join(cache, `console-${lsm}.txt`);
  const result = spawnSync("timeout", [
    "--kill-after=10",
    "240",
    "qemu-system-x86_64",
    "-accel",
    "tcg",
    "-cpu",
    "max",
    "-smp",
    "2",
    "-m",
    "4096",
    "-nographic",
    "-no-reboot",
    "-kernel",
    vmlinux,
    "-initrd",
    cpio,
    "-append",
    `console=ttyS0 quiet loglevel=1 panic=-1 peersec.lsm=${lsm} ${cmdline}`,
  ], { encoding: "utf8", maxBuffer: 256 * 1024 * 1024 });
  writeFileSync(console_, (result.stdout ?? "") + (result.stderr ?? ""));
  if (!result.stdout?.includes("=====PEERSEC-DONE")) {
    fail(
      `the ${lsm} guest did not finish (exit ${result.status}); its console is in ${console_}:\n` +
        (result.stdout ?? "").split("\n").slice(-25).join("\n"),
    );
  }
  const files = {};
  let current;
  for (const line of result.stdout.replaceAll("\r", "").split("\n")) {
    // The first marker can share a line with the firmware's last words.
    const marker = /=====PEERSEC-FILE (\S+)/.exec(line);
    if (marker) {
      current = marker[1];
      files[current] = [];
    } else if (line.startsWith("=====PEERSEC-DONE")) {
      current = undefined;
    } else if (current) {
      files[current].push(line);
    }
  }
  return Object.fromEntries(
    Object.entries(files).map((
      [name, lines],
    ) => [name, lines.join("\n").trim()]),
  );
}
