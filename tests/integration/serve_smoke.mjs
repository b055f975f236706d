// Copied into a consumer project by tarball.mjs: `peersec/serve` from the
// installed package answers a request with the requester's identity.
import http from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { serve } from "peersec/serve";

const path = join(tmpdir(), `peersec-serve-smoke-${process.pid}.sock`);
const server = serve({
  path,
  onListen() {
    http.get({ socketPath: path, path: "/smoke" }, (response) => {
      let body = "";
      response.on("data", (chunk) => body += chunk);
      response.on("end", async () => {
        await server.shutdown();
        const peer = JSON.parse(body);
        console.log(JSON.stringify({
          status: response.statusCode,
          samePid: peer.pid === process.pid,
          uid: peer.uid,
        }));
      });
    });
  },
}, (_request, { peer }) => Response.json(peer));
