// A kernel for the access tests, with no LSM needed: files and transaction
// files answered the way the brief (and the kernel sources it cites) says
// selinuxfs, apparmorfs and smackfs answer. Every open and transaction is
// logged so a test can say what was (not) asked.
import {
  type KernelFile,
  KernelFileError,
  type KernelFiles,
} from "../access.ts";

type Content = string | Uint8Array | (() => string | Uint8Array);
/** A transaction handler: the request's text (latin1) → the reply. */
type Handler = (request: string, bytes: Uint8Array) => string | Uint8Array;

const bytesOf = (content: string | Uint8Array) =>
  typeof content === "string"
    ? Uint8Array.from(content, (character) => character.charCodeAt(0))
    : content;

/** A KernelFileError, for handlers and file errors. */
export const failure = (path: string, syscall: string, code: string) =>
  new KernelFileError(path, syscall, code);

export class FakeKernel implements KernelFiles {
  /** path → content, or an errno name the open fails with. */
  readonly files = new Map<string, Content | { error: string }>();
  /** path → handler; an errno name fails the open. */
  readonly handlers = new Map<string, Handler | { error: string }>();
  /** Every transaction: path and request (latin1 text). */
  readonly transactions: {
    path: string;
    request: string;
    bytes: Uint8Array;
  }[] = [];
  /** Every open() (not transactions). */
  readonly opens: string[] = [];
  /** Open KernelFiles not yet closed. */
  openCount = 0;

  open(path: string): KernelFile {
    this.opens.push(path);
    const entry = this.files.get(path);
    if (entry === undefined) throw failure(path, "open", "ENOENT");
    if (typeof entry === "object" && "error" in entry) {
      throw failure(path, "open", entry.error);
    }
    this.openCount++;
    let closed = false;
    return {
      readAt: (buffer: Uint8Array, position: number) => {
        if (closed) throw failure(path, "read", "EBADF");
        const current = this.files.get(path);
        if (current === undefined) throw failure(path, "read", "ENOENT");
        if (typeof current === "object" && "error" in current) {
          throw failure(path, "read", current.error);
        }
        const data = bytesOf(
          typeof current === "function" ? current() : current,
        );
        const slice = data.subarray(position, position + buffer.length);
        buffer.set(slice);
        return slice.length;
      },
      close: () => {
        if (!closed) this.openCount--;
        closed = true;
      },
    };
  }

  transact(
    path: string,
    request: Uint8Array,
    maxReplyLength: number,
  ): Uint8Array {
    const handler = this.handlers.get(path);
    if (handler === undefined) throw failure(path, "open", "ENOENT");
    if (typeof handler === "object") throw failure(path, "open", handler.error);
    const text = String.fromCharCode(...request);
    this.transactions.push({ path, request: text, bytes: request.slice() });
    const reply = bytesOf(handler(text, request));
    return reply.subarray(0, maxReplyLength);
  }

  /** Transactions on one path. */
  asked(path: string): string[] {
    return this.transactions.filter((entry) => entry.path === path).map((
      entry,
    ) => entry.request);
  }
}

// ---- SELinux ---------------------------------------------------------------

export interface SelinuxRule {
  allowed?: string[];
  auditallow?: string[];
  /** Permissions with a dontaudit rule (cleared from auditdeny). */
  dontaudit?: string[];
}

export interface FakeSelinux {
  kernel: FakeKernel;
  /** The status page's words; change them to simulate the kernel. */
  status: {
    version: number;
    sequence: number;
    enforcing: number;
    policyload: number;
    denyUnknown: number;
  };
  /** class → [value, permissions in order]; missing = not in the policy. */
  classes: Map<string, { value: number; perms: string[] }>;
  /** "source_t target_t class" → rule. */
  rules: Map<string, SelinuxRule>;
  /** Permissive source types. */
  permissive: Set<string>;
  /** Types the policy knows (others: EINVAL). */
  types: Set<string>;
  /** Loads a "new policy": classes renumbered, sequence and policyload bumped. */
  reload(classes: Map<string, { value: number; perms: string[] }>): void;
  /** Toggles enforcing as the kernel does (sequence bumped twice). */
  setEnforcing(on: boolean): void;
}

export const SELINUX_ROOT = "/sys/fs/selinux";
export const ACCESS = `${SELINUX_ROOT}/access`;

/** The 20-byte status page, little endian (this test machine's order). */
export function statusBytes(words: number[]): Uint8Array {
  const bytes = new Uint8Array(20);
  const view = new DataView(bytes.buffer);
  words.forEach((word, index) => view.setUint32(index * 4, word, true));
  return bytes;
}

export function fakeSelinux(): FakeSelinux {
  const kernel = new FakeKernel();
  const state: FakeSelinux = {
    kernel,
    status: {
      version: 1,
      sequence: 2,
      enforcing: 1,
      policyload: 1,
      denyUnknown: 0,
    },
    classes: new Map([
      ["file", { value: 6, perms: ["read", "write"] }],
      ["peersec_http", {
        value: 57,
        perms: ["get", "head", "post", "put", "patch", "delete"],
      }],
    ]),
    rules: new Map(),
    permissive: new Set(),
    types: new Set([
      "client_a_t",
      "client_b_t",
      "client_p_t",
      "server_t",
      "api_t",
    ]),
    reload(classes) {
      state.classes = classes;
      state.status.sequence += 2;
      state.status.policyload += 1;
      install();
    },
    setEnforcing(on) {
      state.status.sequence += 2;
      state.status.enforcing = on ? 1 : 0;
    },
  };
  const install = () => {
    for (const path of [...kernel.files.keys()]) {
      if (path.startsWith(`${SELINUX_ROOT}/class/`)) kernel.files.delete(path);
    }
    for (const [name, { value, perms }] of state.classes) {
      kernel.files.set(`${SELINUX_ROOT}/class/${name}/index`, `${value}`);
      perms.forEach((perm, index) =>
        kernel.files.set(
          `${SELINUX_ROOT}/class/${name}/perms/${perm}`,
          `${index + 1}`,
        )
      );
    }
  };
  kernel.files.set(
    "/proc/self/mounts",
    "sysfs /sys sysfs rw,nosuid 0 0\nselinuxfs /sys/fs/selinux selinuxfs rw,relatime 0 0\n",
  );
  kernel.files.set(`${SELINUX_ROOT}/status`, () => {
    const s = state.status;
    return statusBytes([
      s.version,
      s.sequence,
      s.enforcing,
      s.policyload,
      s.denyUnknown,
    ]);
  });
  kernel.files.set(
    "/proc/self/attr/current",
    "system_u:system_r:server_t:s0\0",
  );
  install();
  kernel.handlers.set(ACCESS, (request) => {
    // The kernel's own parse: sscanf("%s %s %hu").
    const [source, target, classText] = request.split(" ");
    const typeOf = (context: string) => context.split(":")[2];
    const sourceType = typeOf(source);
    const targetType = typeOf(target);
    if (!state.types.has(sourceType) || !state.types.has(targetType)) {
      throw failure(ACCESS, "write", "EINVAL");
    }
    const value = Number(classText);
    const entry = [...state.classes].find(([, c]) => c.value === value);
    let allowed = 0, auditallow = 0, auditdeny = 0xffffffff;
    if (entry) {
      const [name, { perms }] = entry;
      const rule = state.rules.get(`${sourceType} ${targetType} ${name}`) ?? {};
      const bits = (list: string[] | undefined) =>
        (list ?? []).reduce(
          (sum, perm) => sum | (1 << perms.indexOf(perm)),
          0,
        ) >>> 0;
      allowed = bits(rule.allowed);
      auditallow = bits(rule.auditallow);
      auditdeny = (0xffffffff & ~bits(rule.dontaudit)) >>> 0;
    }
    const flags = state.permissive.has(sourceType) ? 1 : 0;
    return `${allowed.toString(16)} ffffffff ${auditallow.toString(16)} ${
      auditdeny.toString(16)
    } ${state.status.policyload} ${flags.toString(16)}`;
  });
  return state;
}

// ---- AppArmor --------------------------------------------------------------

export const AA_DIRECTORY = "/sys/kernel/security/apparmor";
export const AA_ACCESS = `${AA_DIRECTORY}/.access`;

/** A label-query reply, exactly as the kernel formats it. */
export const aaReply = (
  allow: number,
  deny: number,
  audit: number,
  quiet: number,
) =>
  `allow 0x${allow.toString(16).padStart(8, "0")}\ndeny 0x${
    deny.toString(16).padStart(8, "0")
  }\naudit 0x${audit.toString(16).padStart(8, "0")}\nquiet 0x${
    quiet.toString(16).padStart(8, "0")
  }\n`;

export interface AppArmorProfileRules {
  /** path prefix → reply words for paths under it; first match wins. */
  rules: [prefix: string, words: [number, number, number, number]][];
}

/**
 * AppArmor with label → rules; an unknown label fails the write with
 * ENOENT; unconfined answers allow-all like the kernel.
 */
export function fakeAppArmor(profiles: Record<string, AppArmorProfileRules>) {
  const kernel = new FakeKernel();
  kernel.files.set(
    "/proc/self/mounts",
    "securityfs /sys/kernel/security securityfs rw,nosuid,nodev,noexec,relatime 0 0\n",
  );
  kernel.files.set(
    "/sys/kernel/security/lsm",
    "lockdown,capability,landlock,yama,apparmor,bpf",
  );
  kernel.files.set("/sys/module/apparmor/parameters/enabled", "Y\n");
  kernel.files.set(`${AA_DIRECTORY}/profiles`, "");
  kernel.files.set("/proc/self/attr/current", "unconfined\n");
  kernel.handlers.set(AA_ACCESS, (_text, bytes) => {
    const decoder = new TextDecoder();
    if (decoder.decode(bytes.subarray(0, 6)) !== "label\0") {
      throw failure(AA_ACCESS, "write", "EINVAL");
    }
    const end = bytes.indexOf(0, 6);
    const label = decoder.decode(bytes.subarray(6, end));
    if (bytes[end + 1] !== 2) throw failure(AA_ACCESS, "write", "EINVAL");
    const path = decoder.decode(bytes.subarray(end + 2));
    // A stack (a//&b) must be allowed by every profile: the kernel's
    // aa_perms_accum_raw, from allperms.
    let [allow, deny, audit, quiet] = [0xffffffff, 0, 0, 0xffffffff];
    for (const name of label.split("//&")) {
      if (name === "unconfined") continue;
      const profile = profiles[name];
      if (!profile) throw failure(AA_ACCESS, "write", "ENOENT");
      // No rule: nothing allowed (file GETATTR always is), nothing quiet.
      const words = profile.rules.find(([prefix]) =>
        path.startsWith(prefix)
      )?.[1] ??
        [1 << 9, 0, 0, 0];
      const [a, d, au, q] = words;
      deny = (deny | d) >>> 0;
      allow = (allow & a & ~d) >>> 0;
      audit = (audit | (au & a)) >>> 0;
      quiet = (quiet & q & ~a) >>> 0;
    }
    return aaReply(allow, deny, audit, quiet);
  });
  return kernel;
}

// ---- Smack -----------------------------------------------------------------

export const SMACK_ROOT = "/sys/fs/smackfs";
export const ACCESS2 = `${SMACK_ROOT}/access2`;

/** Smack with rules "subject object" → letters; labels never seen: '0'. */
export function fakeSmack(rules: Record<string, string>, known: string[]) {
  const kernel = new FakeKernel();
  kernel.files.set(
    "/proc/self/mounts",
    "smackfs /sys/fs/smackfs smackfs rw,relatime 0 0\n",
  );
  kernel.files.set(ACCESS2, "");
  kernel.files.set("/proc/self/attr/current", "srv");
  kernel.handlers.set(ACCESS2, (request) => {
    const [subject, object, access] = request.split(" ");
    if (!known.includes(subject) || !known.includes(object)) return "0\0";
    if (subject === object) return "1\0";
    const granted = rules[`${subject} ${object}`] ?? "";
    const wanted = access.replaceAll("-", "");
    return [...wanted].every((letter) => granted.includes(letter))
      ? "1\0"
      : "0\0";
  });
  return kernel;
}
