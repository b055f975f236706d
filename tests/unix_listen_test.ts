// listenOnPath: a socket file with a mode, in whichever runtime runs the
// suite, against real processes of another user (uid 65534 through setpriv;
// the tests run as root): an attacker that loops over rename and symlink
// swaps, a client that loops over connect, and Deno under narrow permissions.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  chmodSync,
  chownSync,
  copyFileSync,
  existsSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import net from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { PeerSecError } from "../mod.ts";
import { listenOnPath } from "../src/unix_listen.ts";
import { detectRuntime } from "../ffi/runtime.ts";
import {
  binary,
  fixture,
  isRoot,
  startProcess,
  SYSTEM_PYTHON,
} from "./helpers.ts";

const runtime = detectRuntime();
const OTHER_UID = 65534;
const asOtherUser = [
  "setpriv",
  `--reuid=${OTHER_UID}`,
  `--regid=${OTHER_UID}`,
  "--clear-groups",
  "--",
];
const rootOnly = { skip: !isRoot() && "needs root (setpriv, chown)" };

/** A fresh root-owned 0755 directory, with a root-owned 0600 file in it. */
function workspace(): { directory: string; secret: string } {
  const directory = mkdtempSync(join(tmpdir(), "peersec-listen-"));
  chmodSync(directory, 0o755);
  const secret = join(directory, "secret");
  writeFileSync(secret, "root only\n");
  chmodSync(secret, 0o600);
  return { directory, secret };
}

/** A fixture copied where another uid can read it. */
function readableCopy(directory: string, name: string): string {
  const copy = join(directory, name);
  copyFileSync(fixture(name), copy);
  chmodSync(copy, 0o644);
  return copy;
}

/**
 * One of the Python loops (attacker, connect loop) running as another user
 * until `stop()`, which resolves to the counts it printed.
 */
function otherUserLoop(
  directory: string,
  script: string,
  args: string[],
): { stop(): Promise<Record<string, number>> } {
  const stopFile = join(directory, `stop-${script}`);
  const child = startProcess(
    asOtherUser[0],
    [
      ...asOtherUser.slice(1),
      SYSTEM_PYTHON,
      readableCopy(directory, script),
      ...args,
      stopFile,
    ],
    { capture: true, timeoutMs: 150_000 },
  );
  return {
    async stop() {
      writeFileSync(stopFile, "");
      const { code } = await child.exited;
      assert.equal(code, 0, `${script} exited with ${code}`);
      return JSON.parse(child.stdout().trim());
    },
  };
}

/** listenOnPath(path, 0o666) fails with EADDRINUSE (and never listens). */
async function refusedAsInUse(path: string): Promise<void> {
  const server = net.createServer();
  try {
    await assert.rejects(listenOnPath(server, path, 0o666), {
      code: "EADDRINUSE",
    });
  } finally {
    if (server.listening) server.close();
  }
}

const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * `count` times: listenOnPath(path, mode), check the file, keep it `holdMs`,
 * close. Returns how often each outcome happened: "listening" (a socket of
 * ours with the mode at the path), the error's code, or what was wrong.
 */
async function listenRounds(
  path: string,
  mode: number,
  count: number,
  holdMs: number,
  whileListening: (round: number) => void = () => {},
): Promise<Record<string, number>> {
  const outcomes: Record<string, number> = {};
  for (let round = 0; round < count; round++) {
    const server = net.createServer((socket) => socket.destroy());
    let outcome = "listening";
    try {
      await listenOnPath(server, path, mode);
    } catch (error) {
      outcome = (error as { code?: string }).code ?? String(error);
    }
    if (outcome === "listening") {
      try {
        const stats = lstatSync(path);
        if (!stats.isSocket()) outcome = "listening, but no socket at the path";
        else if (stats.uid !== process.geteuid!()) outcome = "another's socket";
        else if ((stats.mode & 0o777) !== mode) {
          outcome = `listening with mode ${(stats.mode & 0o777).toString(8)}`;
        } else whileListening(round);
        await pause(holdMs);
      } finally {
        await new Promise((resolve) => server.close(resolve));
      }
    }
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  return outcomes;
}

test(
  `${runtime} listenOnPath: an attacker looping over rename and symlink swaps in a directory it can write never gets a file chmod'ed; the directory is refused`,
  rootOnly,
  async () => {
    const { directory, secret } = workspace();
    const theirs = join(directory, "theirs");
    mkdirSync(theirs, { mode: 0o755 });
    chownSync(theirs, OTHER_UID, OTHER_UID);
    const attacker = otherUserLoop(directory, "socket_path_attacker.py", [
      theirs,
      secret,
    ]);
    try {
      await pause(300); // the attacker is looping
      const outcomes = await listenRounds(
        join(theirs, "app.sock"),
        0o666,
        100,
        2,
      );
      const attacks = await attacker.stop();
      assert.equal(
        statSync(secret).mode & 0o777,
        0o600,
        `the server chmod'ed the attacker's choice of file (attacker ${
          JSON.stringify(attacks)
        }, server ${JSON.stringify(outcomes)})`,
      );
      assert.deepEqual(outcomes, { ERR_UNSAFE_DIRECTORY: 100 });
      // Nothing of the server's was ever created there.
      for (const name of readdirSync(theirs)) {
        assert.equal(lstatSync(join(theirs, name)).uid, OTHER_UID, name);
      }
    } finally {
      await attacker.stop().catch(() => {});
      rmSync(directory, { recursive: true, force: true });
    }
  },
);

test(
  `${runtime} listenOnPath: with a mode, a directory another user may change — its own, writable by group or others and not sticky, above the socket, or reached through their symlink — is refused and named; nothing is created`,
  rootOnly,
  async () => {
    const { directory } = workspace();
    const made = (name: string, mode: number, uid = 0) => {
      const path = join(directory, name);
      mkdirSync(path);
      chmodSync(path, mode);
      chownSync(path, uid, uid);
      return path;
    };
    const open = made("open", 0o777);
    const group = made("group", 0o775);
    const owned = made("owned", 0o755, OTHER_UID);
    const below = join(open, "below");
    mkdirSync(below, { mode: 0o755 });
    const safe = made("safe", 0o755);
    const theirLink = join(directory, "their-link");
    symlinkSync(safe, theirLink);
    lchownSync(theirLink, OTHER_UID, OTHER_UID);
    const linkToOpen = join(directory, "link-to-open");
    symlinkSync("open", linkToOpen); // relative, root's: followed, then checked
    const cases: [string, string, RegExp][] = [
      [open, open, /writable by others \(mode 0o777\) and not sticky/],
      [group, group, /writable by its group \(mode 0o775\) and not sticky/],
      [owned, owned, new RegExp(`belongs to uid ${OTHER_UID}`)],
      [below, open, /writable by others/],
      [
        theirLink,
        theirLink,
        new RegExp(`symlink .* belongs to uid ${OTHER_UID}`),
      ],
      [linkToOpen, open, /writable by others/],
    ];
    try {
      for (const [parent, named, why] of cases) {
        const path = join(parent, "app.sock");
        const server = net.createServer();
        try {
          await assert.rejects(listenOnPath(server, path, 0o660), (error) => {
            assert.ok(error instanceof PeerSecError, String(error));
            assert.equal(error.code, "ERR_UNSAFE_DIRECTORY");
            assert.ok(
              error.message.includes(` ${named} `),
              `${path}: the message names ${named}: ${error.message}`,
            );
            assert.match(error.message, why);
            return true;
          });
          assert.equal(server.listening, false);
        } finally {
          if (server.listening) server.close();
        }
        assert.ok(!existsSync(path), `${path} was created`);
      }
      // Without a mode nothing is changed through the path: it listens as
      // server.listen(path) does.
      const plain = net.createServer();
      await listenOnPath(plain, join(open, "plain.sock"), undefined);
      assert.ok(lstatSync(join(open, "plain.sock")).isSocket());
      await new Promise((resolve) => plain.close(resolve));
    } finally {
      rmSync(directory, { recursive: true, force: true });
    }
  },
);

test(
  `${runtime} listenOnPath: in a sticky directory shared with an attacker the mode holds from the first moment (another uid never connects at 0o600, does at 0o666), the file is at the real path, nothing is replaced, the umask is back`,
  rootOnly,
  async () => {
    const { directory, secret } = workspace();
    const shared = join(directory, "shared");
    mkdirSync(shared);
    chmodSync(shared, 0o1777);
    const path = join(shared, "app.sock");
    const umaskBefore = process.umask();
    const attacker = otherUserLoop(directory, "socket_path_attacker.py", [
      shared,
      secret,
    ]);
    const client = otherUserLoop(directory, "connect_loop.py", [path]);
    try {
      await pause(300);
      const outcomes = await listenRounds(path, 0o600, 60, 5, (round) => {
        if (round > 0) return;
        // The kernel's name for the listening socket is the path itself
        // (what ss -xlp and curl -v show), not a staging path.
        const names = readFileSync("/proc/net/unix", "utf8").split("\n")
          .map((line) => line.split(/\s+/).slice(7).join(" "));
        assert.ok(names.includes(path), `${path} not in /proc/net/unix`);
      });
      const attacks = await attacker.stop();
      const connects = await client.stop();
      assert.equal(statSync(secret).mode & 0o777, 0o600);
      assert.equal(
        connects.connected ?? 0,
        0,
        `uid ${OTHER_UID} connected to a 0o600 socket: ${
          JSON.stringify(connects)
        }`,
      );
      assert.ok(
        (connects.EACCES ?? 0) > 0,
        `the client never met the socket: ${JSON.stringify(connects)}`,
      );
      // The attacker found the server's socket, and the kernel refused to
      // let it move it away.
      assert.ok(
        attacks.seen > 0 && attacks.refused > 0,
        `no swap tried: ${JSON.stringify(attacks)}`,
      );
      assert.equal(attacks.replaced, 0, JSON.stringify(attacks));
      assert.deepEqual(outcomes, { listening: 60 });
      assert.equal(process.umask(), umaskBefore);

      // At 0o666 the other user connects.
      const open = net.createServer((socket) => {
        socket.resume(); // read to the client's end, so the connection closes
        socket.end("bye");
      });
      await listenOnPath(open, path, 0o666);
      try {
        const reader = startProcess(asOtherUser[0], [
          ...asOtherUser.slice(1),
          SYSTEM_PYTHON,
          readableCopy(directory, "unix_client.py"),
          path,
        ]);
        assert.equal((await reader.exited).code, 0);
      } finally {
        await new Promise((resolve) => open.close(resolve));
      }
      // Nothing at the name is ever replaced or followed — a file, the
      // other user's symlink to the secret: EADDRINUSE, both untouched.
      writeFileSync(path, "mine");
      await refusedAsInUse(path);
      assert.equal(readFileSync(path, "utf8"), "mine");
      rmSync(path);
      symlinkSync(secret, path);
      lchownSync(path, OTHER_UID, OTHER_UID);
      await refusedAsInUse(path);
      assert.ok(lstatSync(path).isSymbolicLink());
      assert.equal(statSync(secret).mode & 0o777, 0o600);
      assert.equal(process.umask(), umaskBefore);
    } finally {
      await attacker.stop().catch(() => {});
      await client.stop().catch(() => {});
      rmSync(directory, { recursive: true, force: true });
    }
  },
);

test(`${runtime} listenOnPath: Deno under --allow-net=unix:<path> --allow-write=<path> (plus --allow-read --allow-sys with a mode) listens at the path`, async () => {
  const directory = mkdtempSync(join(tmpdir(), "peersec-listen-"));
  const path = join(directory, "narrow.sock");
  const deno = (permissions: string[], args: string[]) => {
    const child = startProcess(
      binary("deno"),
      [
        "run",
        "--no-prompt",
        ...permissions,
        fixture("listen_with_mode.ts"),
        path,
        ...args,
      ],
      { capture: true, env: { ...process.env, NO_COLOR: "1" } },
    );
    return child.exited.then(({ code }) => ({
      code,
      report: JSON.parse(child.stdout().trim() || "null"),
    }));
  };
  const netFlag = `--allow-net=unix:${path}`;
  const write = `--allow-write=${path}`;
  const umask = process.umask(); // the child's, inherited
  try {
    const withMode = await deno(
      [netFlag, write, "--allow-read", "--allow-sys"],
      ["660"],
    );
    assert.deepEqual(withMode, {
      code: 0,
      report: { mode: 0o660, address: path, umask },
    });
    // Without a mode only the path itself is needed.
    const withoutMode = await deno(
      [netFlag, write, `--allow-read=${path}`],
      [],
    );
    assert.deepEqual(withoutMode, {
      code: 0,
      report: { mode: 0o777 & ~umask, address: path, umask: null },
    });
    // A mode reads the uid and sets the umask: system access for Deno.
    const noSys = await deno([netFlag, write, "--allow-read"], ["660"]);
    assert.equal(noSys.code, 1);
    assert.equal(noSys.report.name, "NotCapable");
    assert.match(noSys.report.message, /Requires sys access/);
    // Refused inside listen(), with the umask at 0o777: restored.
    const noNet = await deno([write, "--allow-read", "--allow-sys"], ["660"]);
    assert.equal(noNet.code, 1);
    assert.equal(noNet.report.name, "NotCapable");
    assert.match(noNet.report.message, /Requires net access to "unix:/);
    assert.equal(noNet.report.umask, umask);
    assert.ok(!existsSync(path));
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
});

test(`${runtime} listenOnPath: a runtime that bound only after listen() returned (outside the umask window) is caught: ERR_SOCKET_MODE, and the socket is gone`, async () => {
  const directory = mkdtempSync(join(tmpdir(), "peersec-listen-"));
  const path = join(directory, "late.sock");
  const server = net.createServer();
  // This server binds a tick late, as a runtime might: with the process
  // umask, so the file is reachable before any chmod.
  const listen = server.listen.bind(server) as (...args: unknown[]) => void;
  (server as unknown as { listen: (...args: unknown[]) => void }).listen = (
    ...args: unknown[]
  ) => {
    setTimeout(() => listen(...args), 0);
  };
  const umask = process.umask(0o022);
  try {
    await assert.rejects(listenOnPath(server, path, 0o600), (error) => {
      assert.ok(error instanceof PeerSecError, String(error));
      assert.equal(error.code, "ERR_SOCKET_MODE");
      assert.match(error.message, /found mode 0o755/);
      return true;
    });
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(server.listening, false);
    assert.ok(!existsSync(path), `${path} is still there`);
    assert.equal(process.umask(), 0o022);
  } finally {
    process.umask(umask);
    if (server.listening) server.close();
    rmSync(directory, { recursive: true, force: true });
  }
});
