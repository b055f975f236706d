/**
 * node:http's request and response objects to Web `Request` and `Response`
 * and back, streaming both ways with backpressure.
 *
 * Written here rather than taken from Hono's Node adapter
 * (`@hono/node-server`), which would otherwise fit: that package loads
 * `hono/ws` at import and needs `hono` itself as a peer, so every peersec user
 * would carry a web framework. The conversion is small; its tests are the
 * server's (bodies both ways, set-cookie, HEAD/204/304, aborts).
 *
 * @module
 */
import {
  type IncomingMessage,
  type ServerResponse,
  validateHeaderName,
  validateHeaderValue,
} from "node:http";

/** Bytes of request body buffered ahead of the handler before reading pauses. */
const REQUEST_BODY_HIGH_WATER_MARK = 64 * 1024;

/** A streaming body over an IncomingMessage: it reads only as fast as it is read. */
function requestBody(incoming: IncomingMessage): ReadableStream<Uint8Array> {
  let done = false;
  return new ReadableStream<Uint8Array>(
    {
      start(controller) {
        incoming.on("data", (chunk: Uint8Array) => {
          if (done) return;
          // A copy: the runtime may reuse the chunk's memory.
          controller.enqueue(new Uint8Array(chunk));
          if ((controller.desiredSize ?? 0) <= 0) incoming.pause();
        });
        incoming.once("end", () => {
          if (done) return;
          done = true;
          controller.close();
        });
        incoming.once("error", (error) => {
          if (done) return;
          done = true;
          controller.error(error);
        });
        incoming.pause();
      },
      pull() {
        incoming.resume();
      },
      cancel() {
        done = true;
        incoming.resume(); // read and drop the rest, so the connection stays usable
      },
    },
    new ByteLengthQueuingStrategy({
      highWaterMark: REQUEST_BODY_HIGH_WATER_MARK,
    }),
  );
}

/** Marks a {@linkcode ServerRequest}'s client as gone (module-private). */
const CLIENT_GONE = Symbol("client gone");

/**
 * A Web `Request` (`instanceof Request` holds, nothing global is replaced)
 * whose `signal` is made only when read: an AbortController handed to the
 * Request constructor cost 4–25 µs per request in Node and Deno here, for a
 * signal most handlers never look at. It aborts when the client goes away
 * before the response is complete, also when read after that. Within the
 * runtime's own `fetch(request)` or `request.clone()` the signal is the
 * plain Request's, which never aborts.
 */
export class ServerRequest extends Request {
  #controller: AbortController | null = null;
  #gone = false;

  static {
    // An accessor over Request's own: declared here rather than as a class
    // getter, which TypeScript's DOM types (signal: a property) refuse.
    Object.defineProperty(ServerRequest.prototype, "signal", {
      configurable: true,
      enumerable: true,
      get(this: ServerRequest): AbortSignal {
        return this.#lazySignal();
      },
    });
  }

  /** The signal, made on first use; aborted at once if the client left. */
  #lazySignal(): AbortSignal {
    if (this.#controller === null) {
      this.#controller = new AbortController();
      if (this.#gone) this.#controller.abort();
    }
    return this.#controller.signal;
  }

  /** The client went away: the signal aborts (now, or once read). */
  [CLIENT_GONE](): void {
    this.#gone = true;
    this.#controller?.abort();
  }
}

/** Aborts `request.signal`: its client went away. */
export function clientGone(request: ServerRequest): void {
  request[CLIENT_GONE]();
}

/**
 * The Web `Request` for an incoming request. Its headers are handed over in
 * one step, as pairs in the order received (repeated ones kept apart).
 *
 * @throws {TypeError} for a request target that is no URL (the caller answers 400).
 */
export function toRequest(
  incoming: IncomingMessage,
  base: string,
): ServerRequest {
  const host = incoming.headers.host;
  const origin = host && /^[A-Za-z0-9.\-:[\]]+$/.test(host)
    ? `http://${host}`
    : base;
  // An origin-form target ("/path?query") is joined as text, which Request
  // parses once, and stays the path as sent: "//admin/x" is a path, never an
  // authority. Anything else (absolute-form) goes through URL.
  const target = incoming.url ?? "/";
  const url = target.startsWith("/")
    ? origin + target
    : new URL(target, origin).href;
  const raw = incoming.rawHeaders;
  const headers: [string, string][] = new Array(raw.length >> 1);
  for (let index = 0; index + 1 < raw.length; index += 2) {
    headers[index >> 1] = [raw[index], raw[index + 1]];
  }
  const method = incoming.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  return new ServerRequest(url, {
    method,
    headers,
    body: hasBody ? requestBody(incoming) : null,
    // Required by the fetch spec for a streaming request body.
    duplex: "half",
  } as RequestInit);
}

/** Statuses and methods whose responses carry no body. */
function hasNoBody(method: string | undefined, status: number): boolean {
  return method === "HEAD" || status === 204 || status === 304 ||
    (status >= 100 && status < 200);
}

/**
 * Response headers that describe this hop's connection and framing, not the
 * response: the server frames every response by the bytes it actually sends.
 * A Response from `fetch()` keeps its upstream's compressed
 * `content-length` over a decoded body; copied, it would let the rest of the
 * body pass for the next response on a keep-alive connection.
 */
const HOP_BY_HOP = new Set([
  "connection",
  "content-length",
  "keep-alive",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
]);

/** A response head, every part checked as node:http will check it. */
interface Head {
  status: number;
  statusText: string;
  /** name, value, name, value, … (node:http's flat form; set-cookie's value a list). */
  headers: (string | string[])[];
  /** `content-length` as the handler gave it, for a HEAD response only. */
  headLength: string | null;
}

const CONNECTION_CLOSE = /(^|,)\s*close\s*($|,)/i;

/**
 * The head to write for `response`. Throws (a TypeError with code
 * ERR_INVALID_CHAR, as node:http's own checks) before anything is written
 * when a header or the status text holds a byte HTTP/1.1 cannot carry: the
 * Web's Headers refuse only NUL, CR and LF.
 */
function checkedHead(response: Response, method: string | undefined): Head {
  const headers: (string | string[])[] = [];
  const cookies: string[] = [];
  let headLength: string | null = null;
  let close = false;
  // forEach, not the iterator: no entry array per header. It yields every
  // set-cookie apart, the others combined.
  response.headers.forEach((value, name) => {
    if (HOP_BY_HOP.has(name)) {
      if (name === "connection" && CONNECTION_CLOSE.test(value)) close = true;
      if (
        name === "content-length" && method === "HEAD" && /^\d+$/.test(value)
      ) {
        headLength = value;
      }
      return;
    }
    validateHeaderName(name);
    validateHeaderValue(name, value);
    // One entry for every set-cookie: node:http merges a flat list into
    // headers already set (a closing server's connection: close) one name at
    // a time, which would keep only the last cookie.
    if (name === "set-cookie") cookies.push(value);
    else headers.push(name, value);
  });
  if (cookies.length > 0) headers.push("set-cookie", cookies);
  if (close) headers.push("connection", "close");
  if (response.statusText) {
    validateHeaderValue("status text", response.statusText);
  }
  return {
    status: response.status,
    statusText: response.statusText,
    headers,
    headLength,
  };
}

/** Writes a checked head in one call (nothing in it can throw any more). */
function writeHead(
  outgoing: ServerResponse,
  head: Head,
  contentLength: number | string | null,
): void {
  if (head.statusText) outgoing.statusMessage = head.statusText;
  if (contentLength !== null) {
    head.headers.push("content-length", String(contentLength));
  }
  outgoing.writeHead(head.status, head.headers);
}

/** Resolves when `outgoing` may be written again, or is gone. */
function writable(outgoing: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      outgoing.off("drain", done);
      outgoing.off("close", done);
      resolve();
    };
    outgoing.once("drain", done);
    outgoing.once("close", done);
  });
}

/**
 * Microtask turns a stream read gets before the first chunk goes out alone:
 * a read of a stream that is already closed settles sooner (Node and Bun
 * take a turn or two), a producer that waits for I/O or a timer does not.
 */
const READ_TURNS = 3;

/** A body chunk, which must be bytes (as Deno.serve and Bun.serve require). */
function bytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value;
  throw new TypeError("a response body chunk is not a Uint8Array");
}

/**
 * Writes a Web `Response` to a node:http response: status, headers (every
 * `set-cookie` kept apart), and the body as a stream that waits for the
 * client to take each chunk before reading the next. The response is framed
 * by the bytes it carries — a `content-length` of one chunk's size, or
 * chunked encoding — never by a length the Response claims.
 *
 * Returns nothing when the response is written at once (no body to read),
 * else a promise. Throws or rejects only while nothing has been written (a
 * header node:http refuses, a body that fails before its first chunk): the
 * caller may still answer otherwise. Once the head is out, a failure
 * destroys the response — the client must not take a cut body for whole —
 * and the promise resolves.
 */
export function writeResponse(
  outgoing: ServerResponse,
  response: Response,
  method: string | undefined,
): Promise<void> | undefined {
  const head = checkedHead(response, method);
  const body = response.body;
  if (body === null || hasNoBody(method, response.status)) {
    body?.cancel().catch(() => {});
    const length = head.headLength ??
      (hasNoBody(method, response.status) ? null : 0);
    writeHead(outgoing, head, length);
    outgoing.end();
    return;
  }
  return writeBody(outgoing, head, body);
}

/** The body part of {@linkcode writeResponse}. */
async function writeBody(
  outgoing: ServerResponse,
  head: Head,
  body: ReadableStream<Uint8Array>,
): Promise<void> {
  const reader = body.getReader();
  let finished = false;
  let started = false;
  try {
    const first = await reader.read();
    if (first.done) {
      finished = started = true;
      writeHead(outgoing, head, 0);
      outgoing.end();
      return;
    }
    const firstBytes = bytes(first.value);
    // A body made of one chunk (a string, bytes) is whole once its stream
    // says done without waiting for a producer: send it in one write with a
    // content-length, as node:http's own end(data) does, instead of chunked
    // encoding. A producer that has not answered within a few microtask
    // turns (a stream of events) does not hold the first chunk back. The
    // read is watched by a flag, which costs less than Promise.race.
    const next = reader.read();
    // (Typed by a cast: the callbacks' assignments are out of TypeScript's sight.)
    let settled = "no" as "no" | "done" | "more" | "failed";
    next.then(
      (result) => settled = result.done ? "done" : "more",
      () => settled = "failed",
    );
    for (let turn = 0; turn < READ_TURNS && settled === "no"; turn++) {
      await null;
    }
    if (settled === "done") {
      finished = started = true;
      writeHead(outgoing, head, firstBytes.byteLength);
      outgoing.end(firstBytes);
      return;
    }
    // A body that failed at once: nothing is out yet, the caller answers.
    if (settled === "failed") await next;
    started = true;
    writeHead(outgoing, head, null);
    if (!outgoing.write(firstBytes)) await writable(outgoing);
    let pending: typeof next | undefined = next;
    while (!outgoing.destroyed) {
      const { done, value } = await (pending ?? reader.read());
      pending = undefined;
      if (done) {
        finished = true;
        break;
      }
      if (!outgoing.write(bytes(value))) await writable(outgoing);
    }
    if (finished) outgoing.end();
  } catch (error) {
    // Nothing of this response is out: the caller answers instead.
    if (!started) throw error;
    // The body failed midway: the client must not take a cut body for whole.
    outgoing.destroy(error instanceof Error ? error : new Error(String(error)));
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}
