// Starts a marketplace on loopback for the browser tests: a fresh data dir, two nodes
// serving the real models (one inside the gateway's process, one as its own
// `flownet node serve`), and the gateway. Every process is stopped at the end.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";

const REPO = resolve(import.meta.dirname, "../..");

export const BIN = process.env.FLOWNET_BIN ?? join(REPO, "target/debug/flownet");
export const MODELS = process.env.FLOWNET_MODELS ?? join(REPO, "models");

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
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
