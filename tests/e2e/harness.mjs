// Starts a marketplace on loopback for the browser tests: a fresh data dir, two nodes
// serving the real models (one inside the gateway's process, one as its own
// `flownet node serve`), and the gateway. Every process is stopped at the end.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

export const REPO = resolve(import.meta.dirname, "../..");

export const BIN = process.env.FLOWNET_BIN ?? join(REPO, "target/debug/flownet");
export const MODELS = process.env.FLOWNET_MODELS ?? join(REPO, "models");

// Ports this process handed out: never handed out twice, so two servers of one
// test cannot be given the same port.
const handedOut = new Set();

function bindOne() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => ok(s));
  });
}

/** `n` distinct free loopback ports: every socket stays bound until all are chosen. */
export async function freePorts(n) {
  const held = [];
  const ports = [];
  try {
    while (ports.length < n) {
      const s = await bindOne();
      held.push(s);
      const { port } = s.address();
      if (!handedOut.has(port)) {
        handedOut.add(port);
        ports.push(port);
      }
    }
  } finally {
    await Promise.all(held.map((s) => new Promise((ok) => s.close(ok))));
  }
  return ports;
}

export async function freePort() {
  return (await freePorts(1))[0];
}

function procAddr(hex) {
  const bytes = [];
  for (let i = 0; i < hex.length; i += 8) {
    const w = parseInt(hex.slice(i, i + 8), 16);
    bytes.push(w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, (w >>> 24) & 0xff);
  }
  if (bytes.length === 4) return bytes.join(".");
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  if (mapped) return bytes.slice(12).join(".");
  const groups = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i] << 8) | bytes[i + 1]).toString(16));
  return groups.join(":");
}

/** The TCP sockets process `pid` listens on, as {address, port}. */
export function listeners(pid) {
  const inodes = new Set();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const t = readlinkSync(`/proc/${pid}/fd/${fd}`);
      if (t.startsWith("socket:[")) inodes.add(t.slice(8, -1));
    } catch {
      // the fd closed meanwhile
    }
  }
  const out = [];
  for (const table of ["tcp", "tcp6"]) {
    let text;
    try {
      // This process's namespace: the sockets reachable from here, wherever `pid` is now.
      text = readFileSync(`/proc/self/net/${table}`, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A" || !inodes.has(f[9])) continue;
      const [addr, port] = f[1].split(":");
      out.push({ address: procAddr(addr), port: parseInt(port, 16) });
    }
  }
  return out;
}

/** `pid` and every process below it. */
export function processTree(pid) {
  const parents = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, "utf8");
      parents.push([Number(name), Number(stat.slice(stat.lastIndexOf(")") + 1).trim().split(/\s+/)[1])]);
    } catch {
      // the process ended meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [p, pp] of parents) if (pp === tree[i]) tree.push(p);
  }
  return tree;
}

/** Whether `pid` lives in another network namespace that has only its own loopback. */
export function inIsolatedNetns(pid) {
  try {
    if (readlinkSync(`/proc/${pid}/ns/net`) === readlinkSync("/proc/self/ns/net")) return false;
    const lines = readFileSync(`/proc/${pid}/net/dev`, "utf8").trim().split("\n").slice(2);
    return lines.every((l) => l.split(":")[0].trim() === "lo");
  } catch {
    return false;
  }
}

/**
 * Throws unless every socket `pid` or a process below it listens on is on loopback (or in
 * an isolated network namespace), with at least `atLeast` loopback sockets reachable.
 */
export function assertListensOnlyOnLoopback(pid, what, atLeast) {
  const loopback = (a) => a.startsWith("127.") || a === "0:0:0:0:0:0:0:1";
  const reachable = [];
  const ours = readlinkSync("/proc/self/ns/net");
  for (const p of processTree(pid)) {
    let theirs;
    try {
      theirs = readlinkSync(`/proc/${p}/ns/net`);
    } catch {
      continue;
    }
    if (theirs !== ours && !inIsolatedNetns(p)) {
      throw new Error(`${what} (pid ${p}) runs in a network namespace with more than loopback`);
    }
    const found = listeners(p);
    const beyond = found.filter((l) => !loopback(l.address));
    if (beyond.length) {
      throw new Error(`${what} (pid ${p}) listens beyond loopback: ${JSON.stringify(beyond)}`);
    }
    reachable.push(...found);
  }
  if (reachable.length < atLeast) {
    throw new Error(`${what} (pid ${pid}) listens on ${JSON.stringify(reachable)}, expected at least ${atLeast} sockets`);
  }
}

/** A fresh browser profile on `base` (1280×900) that records into `problems` every
 * request off the gateway, console error, failed response (but the 404 of an account
 * not made yet) and page error; then makes a key and takes the welcome tokens. Returns
 * the context and its page. */
export async function walletPage(browser, base, problems) {
  const ctx = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  ctx.on("request", (r) => {
    const u = new URL(r.url());
    if (!["blob:", "data:"].includes(u.protocol) && u.origin !== base) problems.push(`request off the gateway: ${r.url()}`);
  });
  const page = await ctx.newPage();
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    const expected = r.status() === 404 && new URL(r.url()).pathname.startsWith("/api/accounts/");
    if (r.status() >= 400 && !expected) problems.push(`${r.status()} for ${r.url()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));

  await page.goto(base);
  await page.getByRole("button", { name: "Make my key" }).click();
  await page.locator("#address").filter({ hasText: /^0x[0-9a-f]{16}$/ }).waitFor();
  await page.getByRole("button", { name: "Get welcome tokens" }).click();
  await page.locator("#balance", { hasText: "1000" }).waitFor();
  return { ctx, page };
}

export class Market {
  constructor() {
    this.dir = mkdtempSync(join(tmpdir(), "flownet-e2e-"));
    this.children = [];
  }

  /** Runs `flownet --key KEY ARGS…` and returns stdout (JSON parsed with --json). */
  run(key, args, json = false) {
    const argv = ["--data-dir", this.dir, "--key", key, "--models-dir", MODELS];
    if (json) argv.push("--json");
    const out = execFileSync(BIN, [...argv, ...args], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
    return json ? JSON.parse(out) : out;
  }

  spawn(key, args) {
    const child = spawn(BIN, ["--data-dir", this.dir, "--key", key, "--models-dir", MODELS, ...args], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    child.log = "";
    child.stderr.on("data", (d) => {
      child.log += d;
    });
    this.children.push(child);
    return child;
  }

  async waitFor(url, child, ms = 60_000) {
    const until = Date.now() + ms;
    while (Date.now() < until) {
      if (child.exitCode !== null) throw new Error(`process exited early:\n${child.log}`);
      try {
        const r = await fetch(url);
        if (r.ok) return;
      } catch {
        // not up yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`${url} did not come up:\n${child.log}`);
  }

  /** Two nodes and the gateway; returns the gateway's base URL. */
  async start() {
    const [gatewayPort, node1Port, node2Port] = [await freePort(), await freePort(), await freePort()];
    this.run("alpine", ["init"]);
    this.run("alpine", [
      "node", "register", "--name", "Alpine node", "--endpoint", `http://127.0.0.1:${node1Port}`,
      "--model", "terrain-diffusion-128=0.5", "--model", "mobilenet-v2=0.1",
    ]);
    this.run("budget", ["init"]);
    this.run("budget", [
      "node", "register", "--name", "Budget node", "--endpoint", `http://127.0.0.1:${node2Port}`,
      "--model", "terrain-diffusion-128=0.4",
    ]);
    const node2 = this.spawn("budget", ["node", "serve", "--threads", "1"]);
    await this.waitFor(`http://127.0.0.1:${node2Port}/healthz`, node2);
    this.gateway = this.spawn("alpine", ["web", "--listen", `127.0.0.1:${gatewayPort}`, "--node", "--threads", "1"]);
    this.url = `http://127.0.0.1:${gatewayPort}`;
    await this.waitFor(`${this.url}/healthz`, this.gateway);
    await this.waitFor(`http://127.0.0.1:${node1Port}/healthz`, this.gateway);
    return this.url;
  }

  /** One node serving the chat model inside the gateway's process; returns the
   * gateway's base URL. */
  async startChat(price = "0.02") {
    const [gatewayPort, nodePort] = await freePorts(2);
    this.run("chatter", ["init"]);
    this.run("chatter", [
      "node", "register", "--name", "Chat node", "--endpoint", `http://127.0.0.1:${nodePort}`,
      "--model", `smollm2-135m-instruct=${price}`,
    ]);
    this.gateway = this.spawn("chatter", ["web", "--listen", `127.0.0.1:${gatewayPort}`, "--node", "--threads", "1"]);
    this.url = `http://127.0.0.1:${gatewayPort}`;
    await this.waitFor(`${this.url}/healthz`, this.gateway);
    await this.waitFor(`http://127.0.0.1:${nodePort}/healthz`, this.gateway);
    return this.url;
  }

  /** One node serving the embedding model inside the gateway's process; returns the
   * gateway's base URL. */
  async startEmbed(price = "0.5") {
    return this.startOne("embedder", "Embedding node", `all-minilm-l6-v2=${price}`);
  }

  /** One node serving the OCR model inside the gateway's process; returns the
   * gateway's base URL. */
  async startOcr(price = "0.2") {
    return this.startOne("reader", "Reading node", `pp-ocrv4=${price}`);
  }

  /** One node named `name` offering `offer` (`model=price`) inside the gateway's
   * process, with data dir `key`; returns the gateway's base URL. */
  async startOne(key, name, offer) {
    const [gatewayPort, nodePort] = await freePorts(2);
    this.run(key, ["init"]);
    this.run(key, ["node", "register", "--name", name, "--endpoint", `http://127.0.0.1:${nodePort}`, "--model", offer]);
    this.gateway = this.spawn(key, ["web", "--listen", `127.0.0.1:${gatewayPort}`, "--node", "--threads", "1"]);
    this.url = `http://127.0.0.1:${gatewayPort}`;
    await this.waitFor(`${this.url}/healthz`, this.gateway);
    await this.waitFor(`http://127.0.0.1:${nodePort}/healthz`, this.gateway);
    return this.url;
  }

  async stop() {
    for (const c of this.children) {
      if (c.exitCode === null) {
        c.kill("SIGINT");
        await new Promise((r) => {
          const t = setTimeout(() => {
            c.kill("SIGKILL");
            r();
          }, 5000);
          c.on("exit", () => {
            clearTimeout(t);
            r();
          });
        });
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  logs() {
    return this.children.map((c) => c.log).join("\n");
  }
}
