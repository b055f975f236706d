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

  async function respond(
    incoming: http.IncomingMessage,
    outgoing: http.ServerResponse,
    connection: Connection,
  ): Promise<void> {
    let request: ServerRequest;
    try {
      request = toRequest(incoming, "http://localhost");
    } catch {
      await writeResponse(outgoing, plain(400, "Bad Request"), incoming.method);
      return;
    }
    outgoing.once("close", () => {
      // Closed before the response was complete: the client went away.
      if (!outgoing.writableFinished) clientGone(request);
    });
    let response: Response;
    try {
      response = await handler(request, connection.info);
      if (!(response instanceof Response)) {
        throw new TypeError("the handler did not return a Response");
      }
    } catch (error) {
      response = await failure(error, request);
    }
    try {
      await writeResponse(outgoing, response, incoming.method);
    } catch (error) {
      // Nothing was written: answer the failure instead, and if even that
      // cannot be sent, a plain 500.
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
  }

  return startPeerServer(options, limits, respond, serverLog);
}
