// Runs in a consumer project that installed the packed `peersec` tarball:
// accepts a connection from a separate client process on a UNIX socket and
// reads the client's identity through the public API. Prints one JSON line.
import { spawn } from "node:child_process";
import {
  closeSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  getPeerCredentials,
  getPeerSecurityContext,
  PeerSecError,
  tryGetPeerSecurityContext,
} from "peersec";

function codeOf(read) {
  try {
    return { value: read() };
  } catch (error) {
    if (!(error instanceof PeerSecError)) throw error;
    return { code: error.code, errno: error.errno, message: error.message };
  }
}

function procAttrCurrent(pid) {
  try {
    return readFileSync(`/proc/${pid}/attr/current`, "utf8")
      .replace(/\n$/, "").replace(/\0$/, "");
  } catch {
    return null;
  }
}

const directory = mkdtempSync(join(tmpdir(), "peersec-smoke-"));
const path = join(directory, "server.sock");
const clientScript = join(directory, "client.mjs");
writeFileSync(
  clientScript,
  `import net from "node:net";
   const socket = net.createConnection(${
    JSON.stringify(path)
  }, () => socket.write("hi"));
   socket.on("data", () => {});
   socket.on("end", () => socket.end());
   socket.on("close", () => process.exit(0));`,
);

const server = net.createServer((socket) => {
  socket.once("data", () => {
    let report;
    try {
      const fd = socket._handle.fd;
      const credentials = getPeerCredentials(fd);
      const closed = openSync("/dev/null", "r");
      closeSync(closed);
      report = {
        runtime: typeof Deno === "object"
          ? "deno"
          : typeof Bun === "object"
          ? "bun"
          : `node${process.versions.node.split(".")[0]}`,
        clientPid: client.pid,
        peerPid: credentials.pid,
        procLabel: procAttrCurrent(client.pid),
        label: codeOf(() => getPeerSecurityContext(fd)),
        tryLabel: codeOf(() => tryGetPeerSecurityContext(fd)),
        closedFd: codeOf(() => getPeerSecurityContext(closed)),
      };
    } catch (error) {
      report = { error: error.code ?? String(error), message: error.message };
    }
    console.log(JSON.stringify(report));
    socket.end();
    server.close();
    rmSync(directory, { recursive: true, force: true });
  });
});
let client;
server.listen(path, () => {
  client = spawn(process.execPath, [clientScript], { stdio: "inherit" });
});
