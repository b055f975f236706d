// Copied into a consumer project by tarball.mjs and run under Node's
// permission model: `serve({ path })` on the path it is given, answering
// anyone with their identity, until SIGTERM.
import { serve } from "peersec/serve";

const server = serve({
  path: process.argv[2],
  allow: "everyone",
  onListen: () => console.log("listening"),
}, (_request, { peer }) => Response.json(peer));
process.once("SIGTERM", () => server.shutdown());
