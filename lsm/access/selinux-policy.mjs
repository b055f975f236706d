// The access lane's SELinux policies: a small MLS base (policy.conf, turned
// into CIL by checkpolicy -C) plus the shipped module
// access/templates/peersec_http.cil and a site module naming the lane's
// domains, compiled together by secilc — the shipped CIL is loaded as is.
//
// The base declares only the kernel classes and permissions the lane needs
// mediated (security compute_av, process transition, file and dir access
// for everyone, and for server_t alone capability audit_write and the
// netlink_audit_socket permissions sending an audit record takes: create,
// write, read, nlmsg_relay); handle_unknown=allow lets every other kernel check pass, so
// an enforcing guest runs, and libselinux's ground truth would allow an
// unknown userspace class (Fedora's setting) — which peersec must deny.
//
// Policy A and policy B differ so that a reload is visible: B declares one
// more class before peersec_http (its class value shifts by one) and lets
// client_b_t GET.
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fail, root, run } from "../common.mjs";

/** Contexts the guest uses. */
export const SELINUX = {
  init: "system_u:base_r:kernel_t:s0",
  server: "system_u:base_r:server_t:s0",
  serverWithoutComputeAv: "system_u:base_r:server_nocav_t:s0",
  admin: "system_u:object_r:api_admin_t:s0",
  clients: {
    reader: "user_u:base_r:client_a_t:s0",
    writer: "user_u:base_r:client_w_t:s0",
    nothing: "user_u:base_r:client_b_t:s0",
    permissive: "user_u:base_r:client_p_t:s0",
  },
  /** A type no policy has: the kernel answers EINVAL. */
  ghost: "user_u:base_r:ghost_t:s0",
};

const DOMAINS = [
  "kernel_t",
  "server_t",
  "server_nocav_t",
  "client_a_t",
  "client_w_t",
  "client_b_t",
  "client_p_t",
];

function baseConf(variant) {
  const types = [...DOMAINS, "security_t", "unlabeled_t", "api_admin_t"];
  return `class security
class process
class file
class dir
class capability
class netlink_audit_socket
${variant === "B" ? "class extra_before_peersec\n" : ""}
sid kernel
sid security
sid unlabeled
sid fs
sid file
sid file_labels
sid init
sid any_socket
sid port
sid netif
sid netmsg

class security { compute_av }
class process { transition dyntransition }
class file { getattr open read write }
class dir { getattr search open read }
class capability { audit_write }
class netlink_audit_socket { create read write nlmsg_relay }
${variant === "B" ? "class extra_before_peersec { nothing }\n" : ""}
sensitivity s0;
dominance { s0 }
category c0;
level s0:c0;

mlsconstrain process transition ( h1 dom h2 );

attribute everything;
${types.map((type) => `type ${type}, everything;`).join("\n")}

role base_r;
role base_r types { ${DOMAINS.join(" ")} };

allow { kernel_t server_t } { ${
    DOMAINS.filter((domain) => domain !== "kernel_t").join(" ")
  } }:process transition;
allow everything everything:file { getattr open read write };
allow everything everything:dir { getattr search open read };
# Only the server's domain may send user AVC records to the kernel's audit
# (the "system" sink): no other domain has these.
allow server_t self:capability audit_write;
allow server_t self:netlink_audit_socket { create read write nlmsg_relay };

user system_u roles { base_r object_r } level s0 range s0 - s0:c0;
user user_u roles { base_r } level s0 range s0 - s0:c0;

sid kernel system_u:base_r:kernel_t:s0
sid security system_u:object_r:security_t:s0
sid unlabeled system_u:object_r:unlabeled_t:s0
sid fs system_u:object_r:unlabeled_t:s0
sid file system_u:object_r:unlabeled_t:s0
sid file_labels system_u:object_r:unlabeled_t:s0
sid init system_u:object_r:unlabeled_t:s0
sid any_socket system_u:object_r:unlabeled_t:s0
sid port system_u:object_r:unlabeled_t:s0
sid netif system_u:object_r:unlabeled_t:s0
sid netmsg system_u:object_r:unlabeled_t:s0
`;
}

/** The lane's own module: its domains in the shipped module's attributes. */
function siteModule(variant) {
  return [
    "(typeattributeset peersec_http_server (server_t))",
    "(typeattributeset peersec_http_reader (client_a_t))",
    "(typeattributeset peersec_http_writer (client_w_t))",
    "(roletype object_r api_admin_t)",
    "(allow client_a_t api_admin_t (peersec_http (get)))",
    "(allow client_w_t api_admin_t (peersec_http (get post)))",
    "(auditallow client_a_t server_t (peersec_http (get)))",
    "(dontaudit client_b_t server_t (peersec_http (delete)))",
    "(typepermissive client_p_t)",
    ...(variant === "B"
      ? ["(allow client_b_t server_t (peersec_http (get)))"]
      : []),
    "",
  ].join("\n");
}

/**
 * Writes and compiles the policies into `directory`: policy.A and policy.B
 * (with the shipped module), policy.none (the base alone: no peersec_http
 * class, handle_unknown=allow). Returns their paths.
 */
export function buildSelinuxPolicies(directory) {
  mkdirSync(directory, { recursive: true });
  const shipped = join(root, "access/templates/peersec_http.cil");
  const out = {};
  for (const variant of ["A", "B"]) {
    const conf = join(directory, `base-${variant}.conf`);
    const cil = join(directory, `base-${variant}.cil`);
    writeFileSync(conf, baseConf(variant));
    run("checkpolicy", ["-M", "-U", "allow", "-C", "-o", cil, conf]);
    const text = readFileSync(cil, "utf8");
    if (!/\(handleunknown allow\)/.test(text)) {
      fail(`checkpolicy -C did not keep handle_unknown=allow in ${cil}`);
    }
    const site = join(directory, `site-${variant}.cil`);
    writeFileSync(site, siteModule(variant));
    out[variant] = join(directory, `policy.${variant}`);
    run("secilc", [
      "-M",
      "true",
      "-c",
      "33",
      "-o",
      out[variant],
      "-f",
      "/dev/null",
      cil,
      shipped,
      site,
    ]);
  }
  out.none = join(directory, "policy.none");
  run("secilc", [
    "-M",
    "true",
    "-c",
    "33",
    "-o",
    out.none,
    "-f",
    "/dev/null",
    join(directory, "base-A.cil"),
  ]);
  return out;
}
