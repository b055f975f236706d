// What the lane does on each security module: how the guest sets it up, the
// client labels, and the scenarios. Labels longer than 255 bytes make the
// growth loop run on a real kernel.
import { readFileSync } from "node:fs";

const tool = "/bin/lsmtool";
/** A client process that connects (the path is appended) under a label. */
const clientAs = (mode, label) => [tool, "as", mode, label, tool, "connect"];

/** A 250-character AppArmor profile name (longer ones fail to load). */
export const APPARMOR_LONG_A = ("peersec_long_a_" + "a".repeat(300)).slice(
  0,
  250,
);
export const APPARMOR_LONG_B = ("peersec_long_b_" + "b".repeat(300)).slice(
  0,
  250,
);
/** A 255-character Smack label, the most Smack takes. */
export const SMACK_LONG = ("peersec_long_" + "s".repeat(300)).slice(0, 255);

/** Every other category: 512 of them, so the kernel cannot shorten to a range. */
const MANY_CATEGORIES = Array.from(
  { length: 512 },
  (_, index) => `c${index * 2}`,
)
  .join(",");

const LISTENER = "/tmp/listener.sock";

export function lsms(selinuxLongType) {
  return {
    selinux: {
      kernel: "selinux",
      cmdline: "lsm=selinux selinux=1",
      setup: [
        "mount -t selinuxfs selinuxfs /sys/fs/selinux",
        "cat /etc/peersec/selinux/policy.33 > /sys/fs/selinux/load",
      ],
      scenarios: [
        { name: "socketpair", kind: "socketpair" },
        {
          name: "accept-cli",
          kind: "accept",
          client: clientAs("selinux", "user_u:base_r:cli_t:s0"),
        },
        {
          name: "accept-long-type",
          kind: "accept",
          client: clientAs("selinux", `user_u:base_r:${selinuxLongType}:s0`),
          longerThan: 255,
        },
        {
          name: "accept-512-categories",
          kind: "accept",
          client: clientAs(
            "selinux",
            `user_u:base_r:cli_t:s0:${MANY_CATEGORIES}`,
          ),
          longerThan: 2000,
        },
        {
          name: "client-reads-server",
          kind: "client-side",
          listener: LISTENER,
        },
        { name: "listening-socket", kind: "listening" },
      ],
    },
    apparmor: {
      kernel: "apparmor",
      cmdline: "lsm=apparmor apparmor=1",
      setup: [
        "for profile in /etc/peersec/apparmor/profiles/*; do " +
        '/sbin/apparmor_parser -r "$profile" || echo "cannot load $profile" >&2; done',
      ],
      scenarios: [
        { name: "socketpair", kind: "socketpair" },
        {
          name: "accept-enforce",
          kind: "accept",
          client: clientAs("apparmor", "peersec_client"),
        },
        {
          name: "accept-complain",
          kind: "accept",
          client: clientAs("apparmor", "peersec_complain"),
        },
        {
          name: "accept-long-profile",
          kind: "accept",
          client: clientAs("apparmor", APPARMOR_LONG_A),
          longerThan: 255,
        },
        {
          name: "accept-stack-of-two",
          kind: "accept",
          client: [
            tool,
            "as",
            "apparmor",
            APPARMOR_LONG_A,
            ...clientAs("apparmor-stack", APPARMOR_LONG_B),
          ],
          longerThan: 500,
        },
        {
          name: "client-reads-server",
          kind: "client-side",
          listener: LISTENER,
        },
        { name: "listening-socket", kind: "listening" },
      ],
    },
    smack: {
      kernel: "smack",
      cmdline: "lsm=smack",
      setup: ["mount -t smackfs smackfs /sys/fs/smackfs"],
      scenarios: [
        { name: "socketpair", kind: "socketpair" },
        {
          name: "accept-cli",
          kind: "accept",
          client: clientAs("smack", "cli"),
        },
        {
          name: "accept-255-characters",
          kind: "accept",
          client: clientAs("smack", SMACK_LONG),
          longerThan: 255,
        },
        {
          name: "client-reads-server",
          kind: "client-side",
          listener: LISTENER,
        },
        // A listening socket has no peer: Smack answers with an empty label
        // (a lone NUL), which peersec reads as "no label".
        { name: "listening-socket", kind: "listening", emptyLabel: true },
      ],
    },
  };
}

/** AppArmor profiles: everything allowed, so only the label differs. */
export function apparmorProfiles() {
  const body = `{
  /** rwlkmix,
  capability,
  network,
  unix,
  signal,
  ptrace,
  change_profile,
}`;
  return {
    peersec_client: `profile peersec_client flags=(enforce) ${body}\n`,
    peersec_complain: `profile peersec_complain flags=(complain) ${body}\n`,
    long_a: `profile ${APPARMOR_LONG_A} flags=(enforce) ${body}\n`,
    long_b: `profile ${APPARMOR_LONG_B} flags=(complain) ${body}\n`,
  };
}

export const readText = (path) => readFileSync(path, "utf8");
