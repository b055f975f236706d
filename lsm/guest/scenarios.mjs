// Runs inside the LSM lane's guest, in Deno, Bun, Node 26 and Node 20: each
// scenario of scenarios.json through peersec's public API, one JSON line per
// scenario on stdout. The host compares them with lsmtool's ground truth.
//
//   <runtime> scenarios.mjs <peersec module> <scenarios.json> <runtime name>
//
// The fds come from the runtime's own APIs where it has them (node:net UNIX
// and TCP servers and clients, Bun.listen); kinds no runtime opens
// (SEQPACKET, datagram sockets, a TCP listener or never-connected socket)
// are made by `lsmtool inherit`, which read the truth from the very same fds
// and named them in PEERSEC_LANE_FDS before it started this program.
import { spawn } from "node:child_process";
import { readFileSync, rmSync } from "node:fs";
import net from "node:net";

const [modulePath, scenariosPath, runtimeName] = typeof Deno === "object"
  ? Deno.args
  : process.argv.slice(2);
const peersec = await import(modulePath);
const scenarios = JSON.parse(readFileSync(scenariosPath, "utf8"));
const hex = (bytes) =>
  Array.from(bytes, (byte) => byte.toString(16).padStart(2, "0")).join("");

function attempt(read) {
  try {
    return { value: read() };
  } catch (error) {
    return { error: error.code ?? String(error), message: error.message };
  }
}

function procLabel(pid) {
  try {
    return readFileSync(`/proc/${pid}/attr/current`, "utf8")
      .replace(/\n$/, "").replace(/\0$/, "");
  } catch (error) {
    return { error: error.code ?? String(error) };
  }
}

/** Everything the public API says about one fd. */
function readAll(fd) {
  const bytes = attempt(() => hex(peersec.getPeerSecurityContextBytes(fd)));
  const label = attempt(() => peersec.getPeerSecurityContext(fd));
  const tryLabel = attempt(() => peersec.tryGetPeerSecurityContext(fd));
  const identity = attempt(() => peersec.getPeerIdentity(fd));
  const info = attempt(() => peersec.getPeerInfo(fd));
  const text = label.value ?? null;
  const parsed = text === null ? null : {
    selinux: attempt(() => peersec.parseSELinuxContext(text)),
    apparmor: attempt(() => peersec.parseAppArmorLabel(text)),
  };
  return { bytes, label, tryLabel, identity, info, parsed };
}

function socketpairScenario() {
  const { defaultReader } = globalThis.__peersecInternals;
  const fds = new Int32Array(2);
  const { AF_UNIX, SOCK_STREAM } = defaultReader.constants.socket;
  if (defaultReader.backend.socketpair(AF_UNIX, SOCK_STREAM, 0, fds).rc !== 0) {
    throw new Error("socketpair failed");
  }
  const result = { ...readAll(fds[0]), procLabel: procLabel(process.pid) };
  peersec.closeFd(fds[0]);
  peersec.closeFd(fds[1]);
  return result;
}

function acceptScenario(scenario) {
  const path = `/tmp/${runtimeName}-${scenario.name}.sock`;
  rmSync(path, { force: true });
  return new Promise((resolve, reject) => {
    let client;
    const server = net.createServer((socket) => {
      try {
        const fd = peersec.socketFd(socket);
        resolve({
          ...readAll(fd),
          clientPid: client.pid,
          procLabel: procLabel(client.pid),
        });
      } catch (error) {
        reject(error);
      } finally {
        socket.destroy();
        server.close();
      }
    });
    server.on("error", reject);
    server.listen(path, () => {
      client = spawn(scenario.client[0], [...scenario.client.slice(1), path], {
        stdio: ["ignore", "ignore", "inherit"],
      });
    });
  });
}

function listeningScenario(scenario) {
  const path = `/tmp/${runtimeName}-${scenario.name}.sock`;
  rmSync(path, { force: true });
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.on("error", reject);
    server.listen(path, () => {
      try {
        // node:net keeps the listening socket's fd on its handle everywhere.
        resolve(readAll(server._handle.fd));
      } catch (error) {
        reject(error);
      } finally {
        server.close();
      }
    });
  });
}

function clientSideScenario(scenario) {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(scenario.listener, () => {
      try {
        resolve(readAll(peersec.socketFd(socket)));
      } catch (error) {
        reject(error);
      } finally {
        socket.destroy();
      }
    });
    socket.on("error", reject);
  });
}

/** PEERSEC_LANE_FDS: `name=fd[:clientPid],…`, from `lsmtool inherit`. */
function inheritedFds() {
  const text =
    (typeof Deno === "object"
      ? Deno.env.get("PEERSEC_LANE_FDS")
      : process.env.PEERSEC_LANE_FDS) ?? "";
  return new Map(
    text.split(",").filter(Boolean).map((entry) => {
      const [name, rest] = entry.split("=");
      const [fd, clientPid] = rest.split(":").map(Number);
      return [name, { fd, clientPid }];
    }),
  );
}

function inheritedScenario(scenario, inherited) {
  const entry = inherited.get(scenario.name);
  if (!entry) {
    throw new Error(`lsmtool inherit made no fd for ${scenario.name}`);
  }
  const result = readAll(entry.fd);
  if (entry.clientPid) {
    result.clientPid = entry.clientPid;
    result.procLabel = procLabel(entry.clientPid);
  }
  return result;
}

/** node:net serves a listener lsmtool made (listen({ fd })), e.g. SCTP. */
function inheritedListenerScenario(scenario, inherited) {
  const entry = inherited.get(scenario.name);
  if (!entry) {
    throw new Error(`lsmtool inherit made no fd for ${scenario.name}`);
  }
  return new Promise((resolve, reject) => {
    let client;
    const server = net.createServer((socket) => {
      try {
        const result = peersec.withSocketFd(socket, (fd) => readAll(fd));
        resolve({
          ...result,
          clientPid: client.pid,
          procLabel: procLabel(client.pid),
        });
      } catch (error) {
        reject(error);
      } finally {
        socket.destroy();
        server.close();
      }
    });
    server.on("error", reject);
    server.listen({ fd: entry.fd }, () => {
      client = spawn(scenario.client[0], [
        ...scenario.client.slice(1),
        scenario.address,
      ], { stdio: ["ignore", "ignore", "inherit"] });
    });
    setTimeout(() => reject(new Error("no connection within 20 s")), 20_000)
      .unref?.();
  });
}

const tcpAddress = (host, port) =>
  host.includes(":") ? `tcp:[${host}]:${port}` : `tcp:${host}:${port}`;

/** A TCP server of the runtime's own (node:net, or Bun.listen) accepts. */
function tcpAcceptScenario(scenario) {
  return new Promise((resolve, reject) => {
    let client;
    const start = (port) => {
      client = spawn(scenario.client[0], [
        ...scenario.client.slice(1),
        tcpAddress(scenario.host, port),
      ], { stdio: ["ignore", "ignore", "inherit"] });
    };
    const answer = (socket) => {
      // Deno's TCP sockets: the duplicate path; everywhere: a dup we own.
      const result = peersec.withSocketFd(socket, (fd) => readAll(fd));
      return {
        ...result,
        clientPid: client.pid,
        procLabel: procLabel(client.pid),
      };
    };
    if (scenario.api === "Bun.listen") {
      const server = Bun.listen({
        hostname: scenario.host,
        port: 0,
        socket: {
          open(socket) {
            try {
              resolve(answer(socket));
            } catch (error) {
              reject(error);
            } finally {
              socket.end();
              server.stop(true);
            }
          },
          data() {},
        },
      });
      start(server.port);
      return;
    }
    const server = net.createServer((socket) => {
      try {
        resolve(answer(socket));
      } catch (error) {
        reject(error);
      } finally {
        socket.destroy();
        server.close();
      }
    });
    server.on("error", reject);
    server.listen(0, scenario.host, () => start(server.address().port));
  });
}

/** A node:net TCP client of the runtime's own reads the server's label. */
function tcpClientSideScenario(scenario) {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection({
      host: scenario.host,
      port: scenario.port,
      // From the server's address, as lsmtool's client does (see lsmtool.c).
      localAddress: scenario.host,
    }, () => {
      try {
        resolve(peersec.withSocketFd(socket, (fd) => readAll(fd)));
      } catch (error) {
        reject(error);
      } finally {
        socket.destroy();
      }
    });
    socket.on("error", reject);
  });
}

const internals = modulePath.replace(/mod\.(ts|js)$/, "ffi/default_reader.$1");
globalThis.__peersecInternals = await import(internals);
const inherited = inheritedFds();
for (const scenario of scenarios) {
  if (scenario.runtimes && !scenario.runtimes.includes(runtimeName)) continue;
  let result;
  try {
    result = scenario.kind === "socketpair"
      ? socketpairScenario()
      : scenario.kind === "accept"
      ? await acceptScenario(scenario)
      : scenario.kind === "listening"
      ? await listeningScenario(scenario)
      : scenario.kind === "inherit"
      ? inheritedScenario(scenario, inherited)
      : scenario.kind === "inherited-listener"
      ? await inheritedListenerScenario(scenario, inherited)
      : scenario.kind === "tcp-accept"
      ? await tcpAcceptScenario(scenario)
      : scenario.kind === "tcp-client-side"
      ? await tcpClientSideScenario(scenario)
      : await clientSideScenario(scenario);
  } catch (error) {
    result = { failure: String(error?.stack ?? error) };
  }
  console.log(JSON.stringify({
    runtime: runtimeName,
    ffi: globalThis.__peersecInternals.defaultReader.backend.ffi,
    scenario: scenario.name,
    ...result,
  }));
}
