// From connection objects to fds, in whichever runtime runs the suite: every
// kind of socket that carries an fd, and every kind that does not.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import http from "node:http";
import net from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  closeFd,
  getPeerCredentials,
  PeerSecError,
  socketFd,
  withSocketFd,
} from "../mod.ts";
import { detectRuntime } from "../ffi/runtime.ts";
import {
  type ClientProcess,
  fixture,
  startProcess,
  SYSTEM_PYTHON,
} from "./helpers.ts";

const runtime = detectRuntime();
const openFdCount = () => readdirSync("/proc/self/fd").length;

function codeIs(code: string, message?: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof PeerSecError, String(error));
    assert.equal(error.code, code);
    if (message) assert.match(error.message, message);
    return true;
  };
}

/** A loopback TCP or UNIX connection accepted by a node:net server here. */
async function withConnection(
  kind: "tcp" | "unix",
  use: (accepted: net.Socket) => Promise<void> | void,
): Promise<void> {
  const server = net.createServer();
  const accepted = new Promise<net.Socket>((resolve) =>
    server.once("connection", resolve)
  );
  const path = `/tmp/peersec-socketfd-${process.pid}.sock`;
  await new Promise<void>((resolve) =>
    kind === "tcp"
      ? server.listen(0, "127.0.0.1", resolve)
      : server.listen(path, resolve)
  );
  const client = kind === "tcp"
    ? net.connect((server.address() as net.AddressInfo).port, "127.0.0.1")
    : net.connect(path);
  const socket = await accepted;
  try {
    await use(socket);
  } finally {
    socket.destroy();
    client.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
}

test(`${runtime}: a node:net UNIX socket gives its own fd; withSocketFd a duplicate it closes`, async () => {
  await withConnection("unix", (socket) => {
    const fd = socketFd(socket);
    assert.equal(getPeerCredentials(fd).pid, process.pid);
    const before = openFdCount();
    let inner = -1;
    const pid = withSocketFd(socket, (duplicate) => {
      assert.equal(openFdCount(), before + 1, "a duplicate is open");
      inner = duplicate;
      return getPeerCredentials(duplicate).pid;
    });
    assert.equal(pid, process.pid);
    assert.notEqual(inner, fd, "the callback gets a duplicate of its own");
    assert.equal(openFdCount(), before, "closed after the callback");
  });
});

test(`${runtime}: withSocketFd refuses a callback that hands back its fd, which is closed by then`, async () => {
  await withConnection("unix", async (socket) => {
    const before = openFdCount();
    const refused = (error: unknown) => {
      assert.ok(error instanceof TypeError, String(error));
      assert.match(
        error.message,
        /callback returned its fd \(\d+\), a duplicate that withSocketFd closes when the callback returns/,
      );
      return true;
    };
    assert.throws(() => withSocketFd(socket, (fd) => fd), refused);
    assert.equal(openFdCount(), before, "closed all the same");
    await assert.rejects(
      withSocketFd(socket, async (fd) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        return fd;
      }),
      refused,
    );
    await assert.rejects(
      Promise.resolve(withSocketFd(socket, (fd) => ({
        then(resolve: (value: number) => void) {
          setTimeout(() => resolve(fd), 5);
        },
      }))),
      refused,
    );
    assert.equal(openFdCount(), before, "no duplicate left open");
    // Any other number is the callback's business.
    let duplicate = -1;
    const other = withSocketFd(socket, (fd) => {
      duplicate = fd;
      return fd + 1;
    });
    assert.equal(other, duplicate + 1);
  });
});

test(`${runtime}: withSocketFd across an await still reads its own peer when the fd number went to a new client`, async () => {
  const directory = mkdtempSync(join(tmpdir(), "peersec-race-"));
  const path = join(directory, "race.sock");
  const server = net.createServer();
  const waiting: ((socket: net.Socket) => void)[] = [];
  server.on("connection", (socket) => {
    socket.on("error", () => {});
    // Like most servers: a client that ends its side is closed at once.
    socket.on("end", () => socket.destroy());
    socket.resume();
    waiting.shift()?.(socket);
  });
  const nextConnection = () =>
    new Promise<net.Socket>((resolve) => waiting.push(resolve));
  await new Promise<void>((resolve) => server.listen(path, resolve));
  const clients: ClientProcess[] = [];
  try {
    const acceptedA = nextConnection();
    const clientA = startProcess(SYSTEM_PYTHON, [
      fixture("unix_client.py"),
      path,
    ]);
    clients.push(clientA);
    const socketA = await clientA.racing(acceptedA);
    const fdA = socketFd(socketA);
    const seen = await withSocketFd(socketA, async (fd) => {
      // A says goodbye and goes away while the callback awaits; the runtime
      // closes fd A and the kernel hands that number to the next client, B.
      const closedA = new Promise((resolve) => socketA.once("close", resolve));
      socketA.write("bye\n");
      await clientA.exited;
      await closedA;
      const acceptedB = nextConnection();
      const clientB = startProcess(SYSTEM_PYTHON, [
        fixture("unix_client.py"),
        path,
      ]);
      clients.push(clientB);
      const socketB = await clientB.racing(acceptedB);
      const fdB = socketFd(socketB);
      const peer = getPeerCredentials(fd);
      socketB.write("bye\n");
      return { fdB, peer, clientB: clientB.pid };
    });
    assert.equal(
      seen.fdB,
      fdA,
      "the hazard happened: B's connection has A's old fd number",
    );
    assert.equal(seen.peer.pid, clientA.pid, "read after the await: still A");
    assert.notEqual(seen.peer.pid, seen.clientB);
  } finally {
    for (const client of clients) await client.stop();
    await new Promise((resolve) => server.close(resolve));
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime}: withSocketFd settles thenables without finally, and a failing close is not the callback's failure`, async () => {
  await withConnection("unix", async (socket) => {
    const before = openFdCount();
    // A bare thenable: no finally, no catch.
    const thenable = withSocketFd(socket, (fd) => ({
      then(resolve: (value: number) => void) {
        setTimeout(() => resolve(getPeerCredentials(fd).pid), 5);
      },
    }));
    assert.equal(await thenable, process.pid);
    assert.equal(openFdCount(), before, "closed once the thenable settled");
    // The callback closes the duplicate itself: the success stands.
    assert.equal(
      await withSocketFd(socket, async (fd) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        closeFd(fd);
        return "still a success";
      }),
      "still a success",
    );
    assert.equal(
      withSocketFd(socket, (fd) => {
        closeFd(fd);
        return "sync success";
      }),
      "sync success",
    );
    await assert.rejects(
      withSocketFd(socket, async () => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        throw new Error("the callback's own failure");
      }),
      /the callback's own failure/,
    );
    assert.equal(openFdCount(), before, "no duplicate left open");
  });
});

if (runtime === "deno") {
  test("deno: a node:net TCP socket has only a duplicate fd: socketFd refuses, withSocketFd closes it", async () => {
    await withConnection("tcp", async (socket) => {
      const before = openFdCount();
      assert.throws(
        () => socketFd(socket),
        codeIs("ERR_NO_SOCKET_FD", /withSocketFd/),
      );
      assert.equal(openFdCount(), before, "the refused duplicate was closed");
      const seen = withSocketFd(socket, (fd) => {
        assert.equal(openFdCount(), before + 1, "a duplicate is open");
        // TCP carries no credentials: the kernel's answer shows fd is the TCP
        // connection.
        assert.throws(() => getPeerCredentials(fd), codeIs("ENODATA"));
        return "read";
      });
      assert.equal(seen, "read");
      assert.equal(openFdCount(), before, "closed after a return");
      assert.throws(() =>
        withSocketFd(socket, () => {
          throw new Error("boom");
        }), /boom/);
      assert.equal(openFdCount(), before, "closed after a throw");
      const value = await withSocketFd(socket, async (fd) => {
        await new Promise((resolve) => setTimeout(resolve, 10));
        assert.equal(openFdCount(), before + 1, "still open while awaiting");
        return fd >= 0;
      });
      assert.equal(value, true);
      assert.equal(openFdCount(), before, "closed after the promise settled");
    });
  });
} else {
  test(`${runtime}: a node:net TCP socket gives its own fd`, async () => {
    await withConnection("tcp", (socket) => {
      const fd = socketFd(socket);
      // TCP carries no credentials: the kernel's answer proves fd is a TCP socket.
      assert.throws(() => getPeerCredentials(fd), codeIs("ENODATA"));
      const before = openFdCount();
      let inner = -1;
      withSocketFd(socket, (duplicate) => {
        assert.throws(() => getPeerCredentials(duplicate), codeIs("ENODATA"));
        inner = duplicate;
      });
      assert.notEqual(inner, fd, "a duplicate of its own");
      assert.equal(openFdCount(), before);
    });
  });
}

test(
  `${runtime}: node:http request sockets${
    runtime === "bun" ? " carry no fd in Bun" : " work through withSocketFd"
  }`,
  async () => {
    const server = http.createServer((request, response) => {
      try {
        const result = withSocketFd(request.socket, (fd) => {
          try {
            getPeerCredentials(fd);
            return "credentials";
          } catch (error) {
            return (error as PeerSecError).code;
          }
        });
        response.end(result);
      } catch (error) {
        response.end(
          `${(error as PeerSecError).code}: ${(error as Error).message}`,
        );
      }
    });
    await new Promise<void>((resolve) =>
      server.listen(0, "127.0.0.1", resolve)
    );
    const port = (server.address() as net.AddressInfo).port;
    const body = await new Promise<string>((resolve, reject) => {
      http.get(`http://127.0.0.1:${port}/`, (response) => {
        let text = "";
        response.on("data", (chunk) => (text += chunk));
        response.on("end", () => resolve(text));
      }).on("error", reject);
    });
    await new Promise((resolve) => server.close(resolve));
    if (runtime === "bun") {
      assert.match(body, /^ERR_NO_SOCKET_FD: .*node:net.*emit\("connection"/);
    } else {
      assert.equal(body, "ENODATA", "the fd is the TCP connection's");
    }
  },
);

if (runtime === "bun") {
  test("bun: Bun.listen sockets give their fd", async () => {
    const Bun = (globalThis as unknown as {
      Bun: {
        listen(options: unknown): { stop(force?: boolean): void };
      };
    }).Bun;
    const path = `/tmp/peersec-bunlisten-${process.pid}.sock`;
    const pid = await new Promise<number>((resolve, reject) => {
      const listener = Bun.listen({
        unix: path,
        socket: {
          open(socket: unknown) {
            try {
              resolve(getPeerCredentials(socketFd(socket)).pid);
            } catch (error) {
              reject(error);
            } finally {
              listener.stop(true);
            }
          },
          data() {},
        },
      });
      net.connect(path).on("error", () => {});
    });
    assert.equal(pid, process.pid);
  });
}

if (runtime === "deno") {
  test("deno: a Deno.listen connection carries no fd, and says what works", async () => {
    const Deno = (globalThis as unknown as {
      Deno: {
        listen(options: { transport: "unix"; path: string }): {
          accept(): Promise<{ close(): void }>;
          close(): void;
        };
        connect(options: { transport: "unix"; path: string }): Promise<
          { close(): void }
        >;
      };
    }).Deno;
    const path = `/tmp/peersec-denolisten-${process.pid}.sock`;
    const listener = Deno.listen({ transport: "unix", path });
    const [accepted, client] = await Promise.all([
      listener.accept(),
      Deno.connect({ transport: "unix", path }),
    ]);
    try {
      assert.throws(
        () => socketFd(accepted),
        codeIs("ERR_NO_SOCKET_FD", /node:net/),
      );
    } finally {
      accepted.close();
      client.close();
      listener.close();
    }
  });
}

test("a fetch-style Request (Deno.serve, Bun.serve) names the pattern that works", () => {
  assert.throws(
    () => socketFd(new Request("http://localhost/")),
    codeIs("ERR_NO_SOCKET_FD", /Deno\.serve, Bun\.serve.*node:net.*node:http/),
  );
});

test("a closed socket is ERR_SOCKET_CLOSED", async () => {
  let closed: net.Socket | undefined;
  await withConnection("unix", (socket) => {
    closed = socket;
  });
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.throws(() => socketFd(closed), codeIs("ERR_SOCKET_CLOSED"));
});

test("things that are not sockets are TypeErrors", () => {
  for (const value of [3, "3", null, undefined, {}, [], () => {}]) {
    assert.throws(() => socketFd(value), TypeError, String(value));
    assert.throws(() => withSocketFd(value, (fd) => fd), TypeError);
  }
  assert.throws(
    () => socketFd({ headers: {}, socket: {} }),
    /an HTTP request, not a socket: pass req\.socket/,
  );
  assert.throws(
    () =>
      withSocketFd(
        { _handle: { fd: 5 } },
        "not a function" as unknown as () => void,
      ),
    TypeError,
  );
});
