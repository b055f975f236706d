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
import type { IncomingMessage, ServerResponse } from "node:http";

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

/**
 * The Web `Request` for an incoming request. `signal` aborts when the client
 * goes away before the response is complete.
 *
 * @throws {TypeError} for a request target that is no URL (the caller answers 400).
 */
export function toRequest(
  incoming: IncomingMessage,
  base: string,
  signal: AbortSignal,
): Request {
  const host = incoming.headers.host;
  const origin = host && /^[A-Za-z0-9.\-:[\]]+$/.test(host)
    ? `http://${host}`
    : base;
  // The usual origin-form target ("/path?query") is joined as text, which
  // Request parses once; anything else (absolute-form) goes through URL.
  const target = incoming.url ?? "/";
  const url = target.startsWith("/") && !target.startsWith("//")
    ? origin + target
    : new URL(target, origin).href;
  const headers = new Headers();
  const raw = incoming.rawHeaders;
  for (let index = 0; index + 1 < raw.length; index += 2) {
    headers.append(raw[index], raw[index + 1]);
  }
  const method = incoming.method ?? "GET";
  const hasBody = method !== "GET" && method !== "HEAD";
  return new Request(url, {
    method,
    headers,
    signal,
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

/** What a race yields when a stream read has no answer yet. */
const NOT_READY = Symbol("not ready");

/**
 * Settles after a few microtask turns: a read of a stream that is already
 * closed settles sooner (Node and Bun take a turn or two), a producer that
 * waits for I/O or a timer does not.
 */
function notReadySoon(): Promise<typeof NOT_READY> {
  return Promise.resolve().then(() => {}).then(() => {}).then(() => NOT_READY);
}

/**
 * Writes a Web `Response` to a node:http response: status, headers (every
 * `set-cookie` kept apart), and the body as a stream that waits for the
 * client to take each chunk before reading the next.
 */
export async function writeResponse(
  outgoing: ServerResponse,
  response: Response,
  method: string | undefined,
): Promise<void> {
  outgoing.statusCode = response.status;
  if (response.statusText) outgoing.statusMessage = response.statusText;
  for (const [name, value] of response.headers) {
    if (name !== "set-cookie") outgoing.setHeader(name, value);
  }
  const cookies = response.headers.getSetCookie();
  if (cookies.length > 0) outgoing.setHeader("set-cookie", cookies);
  const body = response.body;
  if (body === null || hasNoBody(method, response.status)) {
    body?.cancel().catch(() => {});
    outgoing.end();
    return;
  }
  const reader = body.getReader();
  let finished = false;
  try {
    const first = await reader.read();
    if (first.done) {
      finished = true;
      outgoing.end();
      return;
    }
    // A body made of one chunk (a string, bytes) is whole once its stream
    // says done without waiting for a producer: send it in one write with a
    // content-length, as node:http's own end(data) does, instead of chunked
    // encoding. The read is not awaited when the producer has not answered
    // yet (a stream of events): the first chunk goes out at once.
    const next = reader.read();
    const ready = await Promise.race([next, notReadySoon()]);
    if (ready !== NOT_READY && ready.done) {
      finished = true;
      if (
        !outgoing.hasHeader("content-length") &&
        !outgoing.hasHeader("transfer-encoding")
      ) {
        outgoing.setHeader("content-length", first.value.byteLength);
      }
      outgoing.end(first.value);
      return;
    }
    if (!outgoing.write(first.value)) await writable(outgoing);
    let pending: typeof next | undefined = next;
    while (!outgoing.destroyed) {
      const { done, value } = await (pending ?? reader.read());
      pending = undefined;
      if (done) {
        finished = true;
        break;
      }
      if (!outgoing.write(value)) await writable(outgoing);
    }
    if (finished) outgoing.end();
  } catch (error) {
    // The body failed midway: the client must not take a cut body for whole.
    outgoing.destroy(error instanceof Error ? error : new Error(String(error)));
  } finally {
    if (!finished) reader.cancel().catch(() => {});
  }
}
