// What the lane does on each security module: how the guest sets it up, the
// client labels, and the scenarios — "how a scenario is set up" lives here.
// Labels longer than 255 bytes make the growth loop run on a real kernel.
//
// A scenario's `kind` says where its fd comes from (lsm/guest/scenarios.mjs
// reads it, lsm/initramfs.mjs writes the C ground truth for it):
//   socketpair, accept, listening, client-side   UNIX stream, node:net
//   tcp-accept, tcp-client-side                  TCP, node:net (or Bun.listen)
//   inherit                                      made by `lsmtool inherit`
//                                                (`inherit` is its spec)
// Flags: `peerLabelIsProcess` (the label must be the client process's own
// context, /proc/<pid>/attr/current), `expectLabel` (what the kernel must
// have said, beyond runtime == C), `longerThan`, `emptyLabel`, `runtimes`.
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
/** A SEQPACKET listener the guest's init holds open (lsmtool listen). */
const SEQPACKET_LISTENER = "seqpacket:/tmp/seq-listener.sock";

/** A client (the address is appended) as `lsmtool inherit` spells it. */
const inheritClient = (argv) => argv.join("+");

/**
 * The man page's other AF_UNIX kinds and the TCP sockets without a peer, the
 * same on every LSM: made by lsmtool (no runtime opens them), read by the
 * runtime from the very fds the truth was read from.
 */
function otherSocketKinds(seqpacketClient) {
  const inherit = (name, spec, flags = {}) => ({
    name,
    kind: "inherit",
    inherit: spec,
    ...flags,
  });
  return [
    inherit("seqpacket-socketpair", "pair-seqpacket"),
    inherit(
      "seqpacket-accept",
      `accepted,seqpacket:/tmp/inherit-seq.sock,${
        inheritClient(seqpacketClient)
      }`,
      { peerLabelIsProcess: true },
    ),
    inherit("seqpacket-client-side", `client-side,${SEQPACKET_LISTENER}`),
    inherit("dgram-socketpair", "pair-dgram"),
    inherit("dgram-connected", "dgram-connected"),
    inherit("dgram-unconnected", "dgram-unconnected"),
    inherit("tcp4-listening", "listening,tcp:127.0.0.1:0"),
    inherit("tcp6-listening", "listening,tcp:[::1]:0"),
    inherit("tcp4-never-connected", "unconnected-tcp4"),
  ];
}

/** TCP served by the runtime's own node:net server (Bun: Bun.listen too). */
function tcpAccept(name, host, client, flags = {}) {
  return { name, kind: "tcp-accept", host, client, tcp: true, ...flags };
}

/** The runtime's own node:net client reads the label of a TCP server. */
function tcpClientSide(name, host, port, flags = {}) {
  return { name, kind: "tcp-client-side", host, port, tcp: true, ...flags };
}

/** What every guest does first: loopback up, the SEQPACKET listener. */
const COMMON_SETUP = [
  "ifconfig lo 127.0.0.1 up",
  `/bin/lsmtool listen ${SEQPACKET_LISTENER} &`,
];

/** SELinux contexts the TCP scenarios use. */
const SELINUX_CLIENT = "user_u:base_r:cli_t:s0";
const SELINUX_SERVER = "user_u:base_r:srv_t:s0";
/** The guest's init (and so the runtimes') context: the kernel SID's. */
const SELINUX_INIT = "system_u:base_r:kernel_t:s0";
/** A client with categories: what the CIPSO pass DOI carries is its level. */
const SELINUX_CLIENT_WITH_LEVEL = "user_u:base_r:cli_t:s0:c1,c2";
/** An AH key for the lane's labeled IPsec SAs (loopback only). */
const AH_KEY = "0x" + "0123456789abcdef".repeat(2) + "01234567";

/**
 * SELinux over TCP, one labeling per loopback address (selinux-testsuite's
 * recipes): 127.0.0.1 NetLabel CIPSO local DOI (the full context travels),
 * 127.0.0.2 CIPSO pass DOI with tag 5 (only the MLS level travels),
 * 127.0.0.3 and ::1 labeled IPsec (AH SAs carrying contexts), fd00::5
 * NetLabel CALIPSO pass DOI (the level only), 127.0.0.4 and fd00::4
 * nothing at all. SCTP
 * runs over 127.0.0.1 (CIPSO) and 127.0.0.4 too.
 */
function selinuxNetworkSetup() {
  const netlabel = "/opt/net/netlabelctl";
  const ip = "/opt/net/ip";
  const sa = (source, spi, context) =>
    `${ip} xfrm state add src ${source} dst ${source} proto ah spi ${spi} ` +
    `ctx ${context} auth sha1 ${AH_KEY}`;
  const policy = (source) =>
    `${ip} xfrm policy add src ${source} dst ${source} proto 6 dir out ` +
    `ctx ${SELINUX_CLIENT} tmpl proto ah mode transport level required`;
  const states = [];
  for (const source of ["127.0.0.3", "::1"]) {
    // In permissive mode every flow matches the policy, so every context
    // that sends needs its own SA: the client's, the runtimes' (init's) and
    // the labeled listener's.
    [SELINUX_CLIENT, SELINUX_INIT, SELINUX_SERVER].forEach((context, index) =>
      states.push(sa(source, `0x${(0x200 + index).toString(16)}`, context))
    );
    states.push(policy(source));
  }
  return [
    "for module in xfrm_algo xfrm_user ah4 ah6 libcrc32c udp_tunnel ip6_udp_tunnel sctp; do insmod /lib/modules/$module.ko || echo insmod $module failed >&2; done",
    // More IPv6 loopback addresses (::1 carries IPsec): CALIPSO, nothing.
    `${ip} -6 addr add fd00::5/128 dev lo`,
    `${ip} -6 addr add fd00::4/128 dev lo`,
    `${netlabel} calipso add pass doi:5`,
    `${netlabel} cipsov4 add local doi:1`,
    `${netlabel} cipsov4 add pass doi:16 tags:5`,
    `${netlabel} map del default`,
    `${netlabel} map add default address:0.0.0.0/0 protocol:unlbl`,
    `${netlabel} map add default address:::/0 protocol:unlbl`,
    `${netlabel} map add default address:127.0.0.1 protocol:cipsov4,1`,
    `${netlabel} map add default address:127.0.0.2 protocol:cipsov4,16`,
    `${netlabel} map add default address:fd00::5 protocol:calipso,5`,
    "for knob in disable_xfrm disable_policy; do " +
    "echo 0 > /proc/sys/net/ipv4/conf/lo/$knob; " +
    "[ -e /proc/sys/net/ipv6/conf/lo/$knob ] && echo 0 > /proc/sys/net/ipv6/conf/lo/$knob; done",
    ...states,
    `${netlabel} -p map list >&2`,
    `${ip} xfrm state list | grep -c '^src' >&2`,
    ...["127.0.0.1", "127.0.0.3", "127.0.0.4"].map((host) =>
      `/bin/lsmtool as selinux ${SELINUX_SERVER} /bin/lsmtool listen tcp:${host}:700${
        host.at(-1)
      } &`
    ),
  ];
}

export function lsms(selinuxLongType) {
  return {
    selinux: {
      kernel: "selinux",
      cmdline: "lsm=selinux selinux=1",
      setup: [
        "mount -t selinuxfs selinuxfs /sys/fs/selinux",
        "cat /etc/peersec/selinux/policy.33 > /sys/fs/selinux/load",
        ...COMMON_SETUP,
        ...selinuxNetworkSetup(),
      ],
      // `peersec probe host:port` against the CIPSO-labeled listener.
      probe: { target: "127.0.0.1:7001", scenario: "tcp4-cipso-client-side" },
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
        ...otherSocketKinds(clientAs("selinux", SELINUX_CLIENT)),
        tcpAccept(
          "tcp4-cipso-accept",
          "127.0.0.1",
          clientAs("selinux", SELINUX_CLIENT),
          { peerLabelIsProcess: true },
        ),
        tcpAccept(
          "tcp4-cipso-accept-512-categories",
          "127.0.0.1",
          clientAs("selinux", `user_u:base_r:cli_t:s0:${MANY_CATEGORIES}`),
          { peerLabelIsProcess: true, longerThan: 2000 },
        ),
        tcpAccept(
          "tcp4-cipso-accept-bun-listen",
          "127.0.0.1",
          clientAs("selinux", SELINUX_CLIENT),
          { peerLabelIsProcess: true, api: "Bun.listen", runtimes: ["bun"] },
        ),
        // The server's type with the client's (here: this process's) level.
        tcpClientSide("tcp4-cipso-client-side", "127.0.0.1", 7001, {
          expectLabel: SELINUX_SERVER,
        }),
        // Only the level travels; user:role:type are the netmsg initial SID's.
        tcpAccept(
          "tcp4-cipso-pass-accept",
          "127.0.0.2",
          clientAs("selinux", SELINUX_CLIENT_WITH_LEVEL),
          { expectLabel: "system_u:object_r:netmsg_t:s0:c1,c2" },
        ),
        tcpAccept(
          "tcp4-ipsec-accept",
          "127.0.0.3",
          clientAs("selinux", SELINUX_CLIENT),
          { peerLabelIsProcess: true },
        ),
        tcpClientSide("tcp4-ipsec-client-side", "127.0.0.3", 7003, {
          expectLabel: SELINUX_SERVER,
        }),
        tcpAccept(
          "tcp6-ipsec-accept",
          "::1",
          clientAs("selinux", SELINUX_CLIENT),
          { peerLabelIsProcess: true },
        ),
        // No labeling for this address: ENOPROTOOPT on both sides.
        tcpAccept(
          "tcp4-unlabeled-accept",
          "127.0.0.4",
          clientAs("selinux", SELINUX_CLIENT),
        ),
        tcpClientSide("tcp4-unlabeled-client-side", "127.0.0.4", 7004),
        tcpAccept(
          "tcp6-unlabeled-accept",
          "fd00::4",
          clientAs("selinux", SELINUX_CLIENT),
        ),
        tcpAccept(
          "tcp6-calipso-pass-accept",
          "fd00::5",
          clientAs("selinux", SELINUX_CLIENT_WITH_LEVEL),
          { expectLabel: "system_u:object_r:netmsg_t:s0:c1,c2" },
        ),
        // SCTP one-to-one: no runtime opens one, so lsmtool accepts it ...
        {
          name: "sctp4-cipso-accept",
          kind: "inherit",
          inherit: `accepted,sctp:127.0.0.1:0,${
            inheritClient(clientAs("selinux", SELINUX_CLIENT))
          }`,
          tcp: true,
          peerLabelIsProcess: true,
        },
        {
          name: "sctp4-unlabeled-accept",
          kind: "inherit",
          inherit: `accepted,sctp:127.0.0.4:0,${
            inheritClient(clientAs("selinux", SELINUX_CLIENT))
          }`,
          tcp: true,
        },
        // ... and node:net serves an inherited SCTP listener (listen({ fd })).
        {
          name: "sctp4-cipso-node-net-listen-fd",
          kind: "inherited-listener",
          inherit: "listening,sctp:127.0.0.1:7010",
          address: "sctp:127.0.0.1:7010",
          truthAddress: "sctp:127.0.0.1:0",
          client: clientAs("selinux", SELINUX_CLIENT),
          tcp: true,
          peerLabelIsProcess: true,
        },
      ],
    },
    apparmor: {
      kernel: "apparmor",
      cmdline: "lsm=apparmor apparmor=1",
      setup: [
        "for profile in /etc/peersec/apparmor/profiles/*; do " +
        '/sbin/apparmor_parser -r "$profile" || echo "cannot load $profile" >&2; done',
        ...COMMON_SETUP,
        "/bin/lsmtool as apparmor peersec_client /bin/lsmtool listen tcp:127.0.0.1:7001 &",
      ],
      probe: { target: "127.0.0.1:7001", scenario: "tcp4-client-side" },
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
        ...otherSocketKinds(clientAs("apparmor", "peersec_client")),
        tcpAccept(
          "tcp4-accept",
          "127.0.0.1",
          clientAs("apparmor", "peersec_client"),
        ),
        tcpAccept("tcp6-accept", "::1", clientAs("apparmor", "peersec_client")),
        tcpClientSide("tcp4-client-side", "127.0.0.1", 7001),
      ],
    },
    smack: {
      kernel: "smack",
      cmdline: "lsm=smack",
      setup: [
        "mount -t smackfs smackfs /sys/fs/smackfs",
        // Labels that differ need write access both ways for TCP (Smack
        // checks each packet's CIPSO label against the receiving socket).
        ...["cli", "srv", SMACK_LONG].flatMap((label) => [
          `echo '${label} _ rwxa' > /sys/fs/smackfs/load2`,
          `echo '_ ${label} rwxa' > /sys/fs/smackfs/load2`,
        ]),
        ...COMMON_SETUP,
        "/bin/lsmtool as smack srv /bin/lsmtool listen tcp:127.0.0.1:7001 &",
      ],
      probe: { target: "127.0.0.1:7001", scenario: "tcp4-client-side" },
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
        ...otherSocketKinds(clientAs("smack", "cli")),
        // Smack labels IPv4 with CIPSO by default: the client's label arrives.
        tcpAccept("tcp4-accept", "127.0.0.1", clientAs("smack", "cli"), {
          peerLabelIsProcess: true,
        }),
        tcpAccept(
          "tcp4-accept-255-characters",
          "127.0.0.1",
          clientAs("smack", SMACK_LONG),
          { peerLabelIsProcess: true, longerThan: 255 },
        ),
        tcpAccept(
          "tcp4-accept-bun-listen",
          "127.0.0.1",
          clientAs("smack", "cli"),
          {
            peerLabelIsProcess: true,
            api: "Bun.listen",
            runtimes: ["bun"],
          },
        ),
        // The ambient label (init's `_`) travels unlabeled.
        tcpAccept("tcp4-accept-ambient", "127.0.0.1", [tool, "connect"], {
          peerLabelIsProcess: true,
        }),
        // Native IPv6 carries no Smack label, and Smack's conn_request hook
        // returns before it sets the request's peer_secid, which nothing
        // zeroes (reqsk_alloc, 6.1): the accepted socket's label is left-over
        // memory — empty, `?`, or another label — and differs per
        // connection. So the runtime reads the very fd the truth was read from.
        {
          name: "tcp6-accept",
          kind: "inherit",
          inherit: `accepted,tcp:[::1]:0,${
            inheritClient(clientAs("smack", "cli"))
          }`,
          tcp: true,
        },
        tcpClientSide("tcp4-client-side", "127.0.0.1", 7001),
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
