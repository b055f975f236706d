// The lane's kernels and the packages its guests need, all from Debian's
// archive with `apt-get download` (never installed on the host, /boot
// untouched): bookworm's cloud kernel (SELinux) and the kernel modules labeled
// IPsec needs, sid's (AppArmor), a Smack kernel built once, and the network
// tools (netlabelctl, ip) with their libraries for the SELinux guest.
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { cache, fail, here, log, run } from "./common.mjs";

const PACKAGES = {
  "qemu-system-x86_64": "qemu-system-x86",
  checkpolicy: "checkpolicy",
  cpio: "cpio",
  lz4: "lz4",
  zstd: "zstd",
  gcc: "gcc",
  make: "make",
  flex: "flex",
  bison: "bison",
  bc: "bc",
  xz: "xz-utils",
};
export function ensureTools() {
  const has = (command) =>
    spawnSync("sh", ["-c", `command -v ${command}`]).status === 0;
  const missing = Object.entries(PACKAGES).filter(([command]) => !has(command))
    .map(([, name]) => name);
  if (spawnSync("dpkg", ["-s", "busybox-static"]).status !== 0) {
    missing.push("busybox-static");
  }
  if (!existsSync("/usr/include/libelf.h")) missing.push("libelf-dev");
  if (!existsSync("/usr/include/openssl/ssl.h")) missing.push("libssl-dev");
  if (missing.length === 0) return;
  log(`installing ${missing.join(" ")}`);
  run("apt-get", ["update", "-qq"], { stdio: "inherit" });
  run("apt-get", [
    "install",
    "-y",
    "-qq",
    "--no-install-recommends",
    ...missing,
  ], {
    stdio: "inherit",
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  });
}

export function download(packageName, directory, aptConfig) {
  mkdirSync(directory, { recursive: true });
  const existing = readdirSync(directory).find((name) =>
    name.startsWith(`${packageName}_`) && name.endsWith(".deb")
  );
  if (existing) return join(directory, existing);
  run("apt-get", ["download", "-qq", packageName], {
    cwd: directory,
    env: aptConfig ? { ...process.env, APT_CONFIG: aptConfig } : process.env,
  });
  return join(
    directory,
    readdirSync(directory).find((name) => name.startsWith(`${packageName}_`)),
  );
}

/** The package the cloud kernel metapackage points at, in an apt configuration. */
function currentCloudKernel(aptConfig) {
  const env = aptConfig
    ? { ...process.env, APT_CONFIG: aptConfig }
    : process.env;
  const depends = run("apt-cache", ["depends", "linux-image-cloud-amd64"], {
    env,
  });
  const match = /Depends: (linux-image-[^\s]+-cloud-amd64)\n/.exec(depends);
  if (!match) fail(`no cloud kernel in apt-cache depends:\n${depends}`);
  return match[1];
}

/**
 * The uncompressed vmlinux of a kernel package, and the named modules from
 * it in `<directory>/modules/<name>.ko` (the package has no modules.dep: the
 * guest loads them with insmod, in order).
 */
function vmlinuxFrom(deb, name, modules = []) {
  const directory = join(cache, name);
  const vmlinux = join(directory, "vmlinux");
  const stamp = join(directory, "from");
  const from = [deb, ...modules].join("\n");
  if (existsSync(vmlinux) && readFileSync(stamp, "utf8") === from) {
    return vmlinux;
  }
  rmSync(directory, { recursive: true, force: true });
  mkdirSync(join(directory, "modules"), { recursive: true });
  run("dpkg-deb", ["-x", deb, join(directory, "package")]);
  const image =
    run("find", [join(directory, "package"), "-name", "vmlinuz*", "-type", "f"])
      .trim().split("\n")[0];
  if (!image) fail(`no vmlinuz in ${deb}`);
  run("python3", [join(here, "extract-vmlinux.py"), image, vmlinux]);
  for (const module of modules) {
    const file = run("find", [
      join(directory, "package"),
      "-name",
      `${module}.ko`,
      "-type",
      "f",
    ]).trim().split("\n")[0];
    if (!file) fail(`no ${module}.ko in ${deb}`);
    copyFileSync(file, join(directory, "modules", `${module}.ko`));
  }
  rmSync(join(directory, "package"), { recursive: true, force: true });
  writeFileSync(stamp, from);
  return vmlinux;
}

/** The SELinux guest's modules: labeled IPsec, then SCTP; in insmod order. */
export const SELINUX_MODULES = [
  "xfrm_algo",
  "xfrm_user",
  "ah4",
  "ah6",
  "libcrc32c",
  "udp_tunnel",
  "ip6_udp_tunnel",
  "sctp",
];

export function selinuxKernel() {
  // Debian bookworm's cloud kernel: SELinux built in.
  const image = currentCloudKernel();
  return vmlinuxFrom(
    download(`${image}-unsigned`, join(cache, "debs")),
    "selinux-kernel",
    SELINUX_MODULES,
  );
}

export function apparmorKernel() {
  // Debian sid's cloud kernel: its AppArmor reports socket peer labels
  // (bookworm's never does). Fetched through an apt configuration private to
  // the lane; the machine's own sources are untouched.
  const base = join(cache, "sid-apt");
  for (const sub of ["lists/partial", "archives/partial", "cache", "etc"]) {
    mkdirSync(join(base, sub), { recursive: true });
  }
  writeFileSync(
    join(base, "etc/sources.list"),
    "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main\n",
  );
  const config = join(base, "apt.conf");
  writeFileSync(
    config,
    [
      `Dir::Etc::SourceList "${base}/etc/sources.list";`,
      `Dir::Etc::SourceParts "-";`,
      `Dir::State::Lists "${base}/lists";`,
      `Dir::Cache "${base}/cache";`,
      `Dir::Cache::Archives "${base}/archives";`,
      `APT::Architecture "amd64";`,
      "",
    ].join("\n"),
  );
  const lists = readdirSync(join(base, "lists")).filter((name) =>
    name.includes("Packages")
  );
  if (lists.length === 0) {
    run("apt-get", ["update", "-qq"], {
      env: { ...process.env, APT_CONFIG: config },
    });
  }
  const image = currentCloudKernel(config); // linux-image-7.x…-cloud-amd64
  const binary = image.replace("linux-image-", "linux-binary-unsigned-");
  return vmlinuxFrom(
    download(binary, join(cache, "debs"), config),
    "apparmor-kernel",
  );
}

export function smackKernel() {
  // Debian's kernels have no Smack: build a small one, once.
  // Bounded like everything else here: ~5-9 minutes on 2 cores, once.
  return run("timeout", [
    "1800",
    "bash",
    join(here, "build-smack-kernel.sh"),
    cache,
  ]).trim();
}

/**
 * netlabelctl (netlabel-tools) and ip with xfrm (iproute2; busybox's ip has
 * none) and every library they need beyond libc, unpacked into one tree:
 * `<tree>/usr/sbin/netlabelctl`, `<tree>/bin/ip`, `<tree>/{,usr/}lib/…`.
 */
export function networkTools() {
  const packages = [
    "netlabel-tools",
    "libnl-3-200",
    "libnl-genl-3-200",
    "iproute2",
    "libbpf1",
    "libelf1",
    "libmnl0",
    "libbsd0",
    "libcap2",
    "zlib1g",
    "libmd0",
  ];
  const tree = join(cache, "network-tools");
  const stamp = join(tree, "from");
  const debs = packages.map((name) => download(name, join(cache, "debs")));
  if (existsSync(stamp) && readFileSync(stamp, "utf8") === debs.join("\n")) {
    return tree;
  }
  rmSync(tree, { recursive: true, force: true });
  mkdirSync(tree, { recursive: true });
  for (const deb of debs) run("dpkg-deb", ["-x", deb, tree]);
  for (const tool of ["usr/sbin/netlabelctl", "bin/ip"]) {
    if (!existsSync(join(tree, tool))) fail(`no ${tool} in the network tools`);
  }
  writeFileSync(stamp, debs.join("\n"));
  return tree;
}
