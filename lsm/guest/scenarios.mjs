// Runs inside the LSM lane's guest, in Deno, Bun, Node 26 and Node 20: each
// scenario of scenarios.json through peersec's public API, one JSON line per
// scenario on stdout. The host compares them with lsmtool's ground truth.
//
//   <runtime> scenarios.mjs <peersec module> <scenarios.json> <runtime name>
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
  const text = label.value ?? null;
  const parsed = text === null ? null : {
    selinux: attempt(() => peersec.parseSELinuxContext(text)),
    apparmor: attempt(() => peersec.parseAppArmorLabel(text)),
  };
  return { bytes, label, tryLabel, identity, parsed };
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

const internals = modulePath.replace(/mod\.(ts|js)$/, "ffi/default_reader.$1");
globalThis.__peersecInternals = await import(internals);
for (const scenario of scenarios) {
  let result;
  try {
    result = scenario.kind === "socketpair"
      ? socketpairScenario()
      : scenario.kind === "accept"
      ? await acceptScenario(scenario)
      : scenario.kind === "listening"
      ? await listeningScenario(scenario)
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
