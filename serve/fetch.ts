/**
 * `serve`'s handling of one allowed request: a Web `Request` in, the
 * handler's `Response` out. Nothing that fails after the handler returns
 * escapes: a response node:http cannot send becomes `onError`'s response (or
 * a 500), and a failure once the head is out closes the connection.
 *
 * @module
 */
import type http from "node:http";
import {
  clientGone,
  type ServerRequest,
  toRequest,
  writeResponse,
} from "./http.ts";
import { describeError, rateLimitedLog, type ServerLog } from "./log.ts";
import {
  checkListenOptions,
  type ListenOptions,
  type ServeHandlerInfo,
} from "./options.ts";
import { type Connection, type PeerServer, startPeerServer } from "./server.ts";

/** A fetch-style handler: a Web Request in, a Response (or a promise of one) out. */
export type ServeHandler = (
  request: Request,
  info: ServeHandlerInfo,
) => Response | Promise<Response>;

/** Options of `serve`: {@linkcode ListenOptions} and `onError`. */
export interface ServeOptions extends ListenOptions {
  /**
   * Turns a handler's failure — or a Response that cannot be sent as it is,
   * such as a header byte HTTP/1.1 cannot carry — into a response (default:
   * 500, logged).
   */
  onError?: (
    error: unknown,
    request: Request,
  ) => Response | Promise<Response>;
}

/** A 400 or 500 with a short plain-text body. */
function plain(status: number, text: string): Response {
  return new Response(`${text}\n`, {
    status,
    headers: { "content-type": "text/plain; charset=utf-8" },
  });
}

/** See `serve` in serve.ts. */
export function startFetchServer(
  options: ServeOptions,
  handler: ServeHandler,
  log?: ServerLog,
): PeerServer {
  const limits = checkListenOptions("serve", options, ["onError"]);
  if (typeof handler !== "function") {
    throw new TypeError("serve needs a handler function");
  }
  if (options.onError !== undefined && typeof options.onError !== "function") {
    throw new TypeError("onError must be a function");
  }
  const onError = options.onError;
  const serverLog = log ?? rateLimitedLog();

  /** The response for a failure: onError's, or a 500. Never throws. */
  async function failure(error: unknown, request: Request): Promise<Response> {
    if (onError !== undefined) {
      try {
        const response = await onError(error, request);
        if (response instanceof Response) return response;
        throw new TypeError("onError did not return a Response");
      } catch (secondError) {
        serverLog("onError", `onError failed: ${describeError(secondError)}`);
        return plain(500, "Internal Server Error");
      }
    }
    serverLog("handler", `the handler failed: ${describeError(error)}`);
    return plain(500, "Internal Server Error");
  }

  /**
   * Answers one request. Synchronous as far as it can be: a handler that
   * returns its Response at once (most do) costs no turn of the event loop
   * before writing starts, and no promise is made for it.
   */
  function respond(
    incoming: http.IncomingMessage,
    outgoing: http.ServerResponse,
    connection: Connection,
  ): void | Promise<void> {
    let request: ServerRequest;
    try {
      request = toRequest(incoming, "http://localhost");
    } catch {
      return writeResponse(
        outgoing,
        plain(400, "Bad Request"),
        incoming.method,
      );
    }
    outgoing.on("close", () => {
      // Closed before the response was complete: the client went away.
      if (!outgoing.writableFinished) clientGone(request);
    });
    let result: Response | Promise<Response>;
    try {
      result = handler(request, connection.info);
    } catch (error) {
      return answerFailure(error, request, incoming, outgoing);
    }
    if (!(result instanceof Response)) {
      return respondLater(result, request, incoming, outgoing);
    }
    return send(result, request, incoming, outgoing);
  }

  /** A handler's promise (or a wrong value): awaited, then sent. */
  async function respondLater(
    result: unknown,
    request: ServerRequest,
    incoming: http.IncomingMessage,
    outgoing: http.ServerResponse,
  ): Promise<void> {
    let response: unknown;
    try {
      response = await result;
    } catch (error) {
      return await answerFailure(error, request, incoming, outgoing);
    }
    if (!(response instanceof Response)) {
      const error = new TypeError("the handler did not return a Response");
      return await answerFailure(error, request, incoming, outgoing);
    }
    return await send(response, request, incoming, outgoing);
  }

  /** Writes the response; if it cannot be sent, the failure's answer. */
  function send(
    response: Response,
    request: ServerRequest,
    incoming: http.IncomingMessage,
    outgoing: http.ServerResponse,
  ): void | Promise<void> {
    let written;
    try {
      written = writeResponse(outgoing, response, incoming.method);
    } catch (error) {
      return answerFailure(error, request, incoming, outgoing);
    }
    if (written === undefined) return;
    return written.catch((error) =>
      answerFailure(error, request, incoming, outgoing)
    );
  }

  /**
   * Answers a failure: onError's response (or a 500); if even that cannot be
   * sent, a plain 500. Nothing of an earlier response was written.
   */
  async function answerFailure(
    error: unknown,
    request: ServerRequest,
    incoming: http.IncomingMessage,
    outgoing: http.ServerResponse,
  ): Promise<void> {
    const fallback = await failure(error, request);
    try {
      await writeResponse(outgoing, fallback, incoming.method);
    } catch {
      await writeResponse(
        outgoing,
        plain(500, "Internal Server Error"),
        incoming.method,
      );
    }
  }

  return startPeerServer(options, limits, respond, serverLog);
}
