/**
 * Audit records over `NETLINK_AUDIT`, as libaudit sends them for
 * dbus-daemon and systemd: one `AUDIT_USER_AVC` message per record, asked to
 * be acknowledged, to the kernel's audit socket. The kernel logs it (to
 * auditd, or the kernel log when no auditd runs) with the sender's
 * `pid= uid= auid= ses= subj=` in front, and answers with an `NLMSG_ERROR`
 * message: error 0 when it took the record, `-EPERM` when the sender lacks
 * `CAP_AUDIT_WRITE`, `-ECONNREFUSED` outside the initial user namespace.
 *
 * The message building and reply parsing are pure; {@linkcode AuditNetlinkSocket}
 * moves them through the runtime's FFI backend (socket, sendto, recv). The
 * kernel handles a message to its audit socket inside `sendto` and queues the
 * acknowledgement before `sendto` returns (kernel/audit.c `audit_receive` is
 * the socket's input function, called synchronously by `netlink_unicast`),
 * so the reply is read without waiting (`MSG_DONTWAIT`): nothing here ever
 * blocks for a reply, and a reply that is not there is reported, not awaited.
 *
 * @module
 */
import type { LibcBackend } from "../src/backend.ts";
import type {
  ArchitectureConstants,
  ArchitectureFamily,
} from "../src/constants.ts";

/** `AF_NETLINK`, the same on every Linux architecture. */
export const AF_NETLINK = 16;
/** `NETLINK_AUDIT`, the audit subsystem's netlink protocol. */
export const NETLINK_AUDIT = 9;
/** `NLMSG_ERROR`: the type of an acknowledgement (error 0) or an error. */
export const NLMSG_ERROR = 2;
/** `NLM_F_REQUEST`: a request to the kernel. */
export const NLM_F_REQUEST = 0x1;
/** `NLM_F_ACK`: asks for an acknowledgement even on success. */
export const NLM_F_ACK = 0x4;
/** The size of `struct nlmsghdr`, the header of every netlink message. */
export const NLMSG_HDRLEN = 16;
/**
 * libaudit's `MAX_AUDIT_MESSAGE_LENGTH`: the most a user message's payload
 * may take (its text and the terminating NUL).
 */
export const MAX_AUDIT_MESSAGE_LENGTH = 8970;
/**
 * The kernel's `AUDIT_MESSAGE_TEXT_MAX`: it logs at most this many
 * characters of a user message's text (`msg='%.*s'`) and drops the rest, so
 * a record's text is kept within it.
 */
export const AUDIT_MESSAGE_TEXT_MAX = 8560;

/** `SOCK_RAW`: 3 on every Linux architecture, MIPS included. */
const SOCK_RAW = 3;
/** `MSG_DONTWAIT`: the same on every Linux architecture. */
const MSG_DONTWAIT = 0x40;
/** `sizeof(struct sockaddr_nl)`. */
const SOCKADDR_NL_LENGTH = 12;
/** `struct nlmsgerr`: `int error` and the header of the message it answers. */
const NLMSGERR_LENGTH = 4 + NLMSG_HDRLEN;

/**
 * The numbers this file needs that src/constants.ts does not carry, per
 * architecture family (uapi asm/fcntl.h: `SOCK_CLOEXEC` is `O_CLOEXEC`;
 * asm/errno.h).
 */
const FAMILY_NUMBERS: Readonly<
  Record<
    ArchitectureFamily,
    Readonly<{
      SOCK_CLOEXEC: number;
      EPROTONOSUPPORT: number;
      EAFNOSUPPORT: number;
      ENOBUFS: number;
      ECONNREFUSED: number;
    }>
  >
> = (() => {
  const generic = {
    SOCK_CLOEXEC: 0o2000000,
    EPROTONOSUPPORT: 93,
    EAFNOSUPPORT: 97,
    ENOBUFS: 105,
    ECONNREFUSED: 111,
  };
  const bsd = {
    EPROTONOSUPPORT: 43,
    EAFNOSUPPORT: 47,
    ENOBUFS: 55,
    ECONNREFUSED: 61,
  };
  return {
    generic,
    powerpc: generic,
    mips: {
      SOCK_CLOEXEC: 0o2000000,
      EPROTONOSUPPORT: 120,
      EAFNOSUPPORT: 124,
      ENOBUFS: 132,
      ECONNREFUSED: 146,
    },
    alpha: { SOCK_CLOEXEC: 0o10000000, ...bsd },
    sparc: { SOCK_CLOEXEC: 0x400000, ...bsd },
    parisc: {
      SOCK_CLOEXEC: 0o10000000,
      EPROTONOSUPPORT: 221,
      EAFNOSUPPORT: 225,
      ENOBUFS: 233,
      ECONNREFUSED: 239,
    },
  };
})();

/** Netlink headers are in the host's byte order. */
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/**
 * What a record's text may hold: printable ASCII but `'` — one line, no NUL
 * (where the kernel would stop), no quote (the kernel logs the text as
 * `msg='…'`: a quote would end it, and what follows would read as fields
 * of the kernel's own).
 */
const RECORD_TEXT = /^[\x20-\x26\x28-\x7e]+$/;

/**
 * The netlink message that sends `text` as an audit record of `type`:
 * `struct nlmsghdr { nlmsg_len = NLMSG_SPACE(size), nlmsg_type = type,
 * nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK, nlmsg_seq = sequence,
 * nlmsg_pid = 0 }` and the text with its terminating NUL (`size` bytes),
 * padded with NULs to 4 bytes — what libaudit's `audit_send` sends.
 *
 * @param type The audit message type (1107 for `AUDIT_USER_AVC`).
 * @param text The record's text: printable ASCII without `'`, 1 to
 *   {@linkcode AUDIT_MESSAGE_TEXT_MAX} characters (the kernel refuses an
 *   empty one and cuts a longer one).
 * @param sequence The message's sequence number (0 to 2³²−1), which the
 *   acknowledgement carries back.
 * @returns The message's bytes.
 * @throws {RangeError} for a type, text or sequence outside those bounds.
 *
 * @example
 * ```ts
 * import { buildAuditMessage } from "./netlink.ts";
 *
 * const message = buildAuditMessage(1107, "avc:  denied  { get } for  …", 1);
 * console.log(message.byteLength % 4); // 0
 * ```
 */
export function buildAuditMessage(
  type: number,
  text: string,
  sequence: number,
): Uint8Array {
  if (!Number.isInteger(type) || type < 1 || type > 0xffff) {
    throw new RangeError(`audit message type ${type} is not a 16-bit type`);
  }
  if (!Number.isInteger(sequence) || sequence < 0 || sequence > 0xffff_ffff) {
    throw new RangeError(`netlink sequence ${sequence} is not a 32-bit value`);
  }
  if (typeof text !== "string" || !RECORD_TEXT.test(text)) {
    throw new RangeError(
      "an audit record's text must be printable ASCII without ', at least " +
        "one character",
    );
  }
  if (text.length > AUDIT_MESSAGE_TEXT_MAX) {
    throw new RangeError(
      `an audit record's text of ${text.length} characters is longer than ` +
        `the ${AUDIT_MESSAGE_TEXT_MAX} the kernel logs`,
    );
  }
  const size = text.length + 1; // the NUL the kernel expects at the end
  const length = NLMSG_HDRLEN + ((size + 3) & ~3);
  const message = new Uint8Array(length);
  const view = new DataView(message.buffer);
  view.setUint32(0, length, LITTLE_ENDIAN); // nlmsg_len
  view.setUint16(4, type, LITTLE_ENDIAN); // nlmsg_type
  view.setUint16(6, NLM_F_REQUEST | NLM_F_ACK, LITTLE_ENDIAN); // nlmsg_flags
  view.setUint32(8, sequence, LITTLE_ENDIAN); // nlmsg_seq
  view.setUint32(12, 0, LITTLE_ENDIAN); // nlmsg_pid: the kernel knows ours
  for (let index = 0; index < text.length; index++) {
    message[NLMSG_HDRLEN + index] = text.charCodeAt(index);
  }
  return message;
}

/** What a datagram from the audit socket says about one sent message. */
export type AuditReply =
  /** The acknowledgement: `errno` 0 when the kernel took the record. */
  | { readonly kind: "ack"; readonly errno: number }
  /** Well-formed messages, none of them the acknowledgement looked for. */
  | { readonly kind: "other" }
  /** Not a netlink datagram this code understands. */
  | { readonly kind: "malformed"; readonly reason: string };

/**
 * Reads a datagram from the audit socket and finds the acknowledgement of
 * the message sent with `sequence` and `type`: an `NLMSG_ERROR` message
 * whose header and quoted original header carry that sequence (and the
 * original that type), with its error (0 or a negated errno) turned into an
 * errno (0 = taken).
 *
 * @param bytes The receive buffer.
 * @param length How many bytes `recv` returned (at most `bytes.byteLength`).
 * @param sequence The sequence number of the message sent.
 * @param type The type of the message sent.
 * @returns The acknowledgement, `other`, or `malformed` with the reason.
 *
 * @example
 * ```ts
 * import { parseAuditReply } from "./netlink.ts";
 *
 * const reply = parseAuditReply(new Uint8Array(36), 36, 1, 1107);
 * console.log(reply.kind); // "malformed": a length of 0
 * ```
 */
export function parseAuditReply(
  bytes: Uint8Array,
  length: number,
  sequence: number,
  type: number,
): AuditReply {
  if (!Number.isInteger(length) || length < 0 || length > bytes.byteLength) {
    throw new RangeError(`length ${length} is not within the buffer`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, length);
  let offset = 0;
  while (length - offset >= NLMSG_HDRLEN) {
    const messageLength = view.getUint32(offset, LITTLE_ENDIAN);
    if (messageLength < NLMSG_HDRLEN || messageLength > length - offset) {
      return {
        kind: "malformed",
        reason:
          `a netlink message of ${messageLength} bytes at byte ${offset} ` +
          `of a ${length}-byte datagram`,
      };
    }
    const messageType = view.getUint16(offset + 4, LITTLE_ENDIAN);
    const messageSequence = view.getUint32(offset + 8, LITTLE_ENDIAN);
    if (messageType === NLMSG_ERROR && messageSequence === sequence) {
      if (messageLength < NLMSG_HDRLEN + NLMSGERR_LENGTH) {
        return {
          kind: "malformed",
          reason: `an NLMSG_ERROR message of ${messageLength} bytes`,
        };
      }
      const error = view.getInt32(offset + NLMSG_HDRLEN, LITTLE_ENDIAN);
      const original = offset + NLMSG_HDRLEN + 4;
      const originalType = view.getUint16(original + 4, LITTLE_ENDIAN);
      const originalSequence = view.getUint32(original + 8, LITTLE_ENDIAN);
      if (originalType === type && originalSequence === sequence) {
        if (error > 0 || error < -4095) {
          return {
            kind: "malformed",
            reason: `an NLMSG_ERROR message with error ${error}`,
          };
        }
        return { kind: "ack", errno: error === 0 ? 0 : -error };
      }
    }
    // NLMSG_ALIGN: the next message starts at a multiple of 4.
    offset += (messageLength + 3) & ~3;
  }
  if (offset === 0) {
    return {
      kind: "malformed",
      reason: `a ${length}-byte datagram, shorter than a netlink header`,
    };
  }
  if (offset < length) {
    return {
      kind: "malformed",
      reason: `${length - offset} bytes after the last netlink message`,
    };
  }
  return { kind: "other" };
}

/** The calls the sender makes: a slice of a runtime's FFI backend. */
export type AuditSocketCalls = Pick<
  LibcBackend,
  "socket" | "sendto" | "recv" | "close"
>;

/** Why a record did not reach the kernel's audit. */
export interface AuditSendFailure {
  /** Always false. */
  readonly delivered: false;
  /**
   * Whether every later record would meet the same answer (the kernel
   * refuses this process, or has no audit), so the caller stops trying.
   */
  readonly permanent: boolean;
  /** The errno name (`"EPERM"`, `"ECONNREFUSED"`, …) or another code. */
  readonly code: string;
  /** Which step failed: `socket`, `sendto`, `recv` or `ack`. */
  readonly step: "socket" | "sendto" | "recv" | "ack";
  /** One line for a person. */
  readonly message: string;
}

/** What sending one record came to. */
export type AuditSendOutcome = { readonly delivered: true } | AuditSendFailure;

/** How many datagrams one send reads at most while looking for its ack. */
const MAX_REPLIES = 8;

/**
 * The netlink audit socket of one sender: opened on first use
 * (`socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_AUDIT)`), one
 * acknowledged message per record. Synchronous; never waits for the kernel.
 *
 * @example
 * ```ts
 * import { AuditNetlinkSocket } from "./netlink.ts";
 * import { defaultReader } from "../ffi/default_reader.ts";
 *
 * const socket = new AuditNetlinkSocket(defaultReader.backend, defaultReader.constants);
 * console.log(socket.send(1107, "peersec example record"));
 * socket.close();
 * ```
 */
export class AuditNetlinkSocket {
  readonly #calls: AuditSocketCalls;
  readonly #constants: ArchitectureConstants;
  readonly #numbers: (typeof FAMILY_NUMBERS)[ArchitectureFamily];
  #fd = -1;
  #sequence = 0;
  readonly #address = new Uint8Array(SOCKADDR_NL_LENGTH);
  /** Large enough for an uncapped acknowledgement quoting a whole message. */
  readonly #reply = new Uint8Array(
    NLMSG_HDRLEN + NLMSGERR_LENGTH + MAX_AUDIT_MESSAGE_LENGTH + 64,
  );

  /**
   * @param calls The FFI backend's socket calls.
   * @param constants This machine's kernel constants.
   */
  constructor(calls: AuditSocketCalls, constants: ArchitectureConstants) {
    this.#calls = calls;
    this.#constants = constants;
    this.#numbers = FAMILY_NUMBERS[constants.family];
    // struct sockaddr_nl { nl_family = AF_NETLINK, nl_pad, nl_pid = 0 (the
    // kernel), nl_groups = 0 }
    new DataView(this.#address.buffer).setUint16(0, AF_NETLINK, LITTLE_ENDIAN);
  }

  /** The socket's fd, or -1 while it is not open. */
  get fd(): number {
    return this.#fd;
  }

  /** The errno name of a value on this machine. */
  errnoName(errno: number): string {
    const known = this.#constants.errnoName.get(errno);
    if (known !== undefined) return known;
    for (const [name, value] of Object.entries(this.#numbers)) {
      if (name.startsWith("E") && value === errno) return name;
    }
    return `errno ${errno}`;
  }

  /** Transient failures: the next record may well get through. */
  #transient(errno: number): boolean {
    const { errno: numbers } = this.#constants;
    return errno === numbers.EINTR || errno === numbers.EAGAIN ||
      errno === numbers.ENOMEM || errno === this.#numbers.ENOBUFS;
  }

  #failure(
    step: "socket" | "sendto" | "recv" | "ack",
    errno: number,
    what: string,
  ): AuditSendFailure {
    const code = this.errnoName(errno);
    const numbers = { ...this.#constants.errno, ...this.#numbers };
    let why = "";
    if (errno === numbers.EPERM) {
      why = step === "ack"
        ? " (this process lacks CAP_AUDIT_WRITE)"
        : " (refused by a security policy)";
    } else if (errno === numbers.ECONNREFUSED) {
      why = " (not in the initial user namespace, or no audit in this kernel)";
    } else if (
      errno === numbers.EPROTONOSUPPORT || errno === numbers.EAFNOSUPPORT
    ) {
      why = " (this kernel has no audit support)";
    } else if (errno === numbers.EACCES) {
      why = " (refused by a security policy)";
    }
    return {
      delivered: false,
      permanent: !this.#transient(errno),
      code,
      step,
      message: `${what}: ${code}${why}`,
    };
  }

  /**
   * Opens the socket unless it is open.
   *
   * @returns null when it is open, else why it cannot be.
   */
  open(): AuditSendFailure | null {
    if (this.#fd >= 0) return null;
    const { rc, errno } = this.#calls.socket(
      AF_NETLINK,
      SOCK_RAW | this.#numbers.SOCK_CLOEXEC,
      NETLINK_AUDIT,
    );
    if (rc < 0) {
      return this.#failure(
        "socket",
        errno,
        "socket(AF_NETLINK, SOCK_RAW, NETLINK_AUDIT)",
      );
    }
    this.#fd = rc;
    return null;
  }

  /**
   * Sends one record and reads the kernel's acknowledgement.
   *
   * @param type The audit message type (1107 for `AUDIT_USER_AVC`).
   * @param text The record's text (see {@linkcode buildAuditMessage}).
   * @returns Whether the kernel took it, and if not why, and whether later
   *   records would fare the same.
   * @throws {RangeError} for a text {@linkcode buildAuditMessage} refuses.
   */
  send(type: number, text: string): AuditSendOutcome {
    this.#sequence = this.#sequence === 0xffff_ffff ? 1 : this.#sequence + 1;
    const sequence = this.#sequence;
    const message = buildAuditMessage(type, text, sequence);
    const opened = this.open();
    if (opened !== null) return opened;
    const calls = this.#calls;
    const { EINTR } = this.#constants.errno;
    let sent = calls.sendto(
      this.#fd,
      message,
      message.byteLength,
      0,
      this.#address,
      SOCKADDR_NL_LENGTH,
    );
    if (sent.rc === -1 && sent.errno === EINTR) {
      sent = calls.sendto(
        this.#fd,
        message,
        message.byteLength,
        0,
        this.#address,
        SOCKADDR_NL_LENGTH,
      );
    }
    if (sent.rc === -1) {
      return this.#failure("sendto", sent.errno, "sendto(NETLINK_AUDIT)");
    }
    if (sent.rc !== message.byteLength) {
      return {
        delivered: false,
        permanent: false,
        code: "ERR_SHORT_SEND",
        step: "sendto",
        message: `sendto(NETLINK_AUDIT) sent ${sent.rc} of ` +
          `${message.byteLength} bytes`,
      };
    }
    const reply = this.#reply;
    for (let read = 0; read < MAX_REPLIES; read++) {
      const received = calls.recv(
        this.#fd,
        reply,
        reply.byteLength,
        MSG_DONTWAIT,
      );
      if (received.rc === -1) {
        if (received.errno === EINTR) continue;
        if (received.errno === this.#constants.errno.EAGAIN) {
          return {
            delivered: false,
            permanent: false,
            code: "ERR_NO_ACK",
            step: "recv",
            message: "the kernel sent no acknowledgement of the audit record",
          };
        }
        return this.#failure("recv", received.errno, "recv(NETLINK_AUDIT)");
      }
      const answer = parseAuditReply(reply, received.rc, sequence, type);
      if (answer.kind === "other") continue;
      if (answer.kind === "malformed") {
        return {
          delivered: false,
          permanent: false,
          code: "ERR_MALFORMED_REPLY",
          step: "recv",
          message: `the audit socket answered with ${answer.reason}`,
        };
      }
      if (answer.errno === 0) return { delivered: true };
      return this.#failure(
        "ack",
        answer.errno,
        "the kernel refused the audit record",
      );
    }
    return {
      delivered: false,
      permanent: false,
      code: "ERR_NO_ACK",
      step: "recv",
      message: `no acknowledgement among ${MAX_REPLIES} replies`,
    };
  }

  /** Closes the socket; the next send opens another. */
  close(): void {
    if (this.#fd < 0) return;
    this.#calls.close(this.#fd);
    this.#fd = -1;
  }
}
