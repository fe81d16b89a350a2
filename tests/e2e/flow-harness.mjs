// A marketplace on a live Flow emulator for the browser test: the emulator (the binary
// FLOW_EMULATOR names) on free loopback ports, FlowNet deployed to its service account
// by `flownet --network emulator flow deploy`, a node operator's account and node, and
// the gateway with that node in its process, all on `--network emulator`. The service
// account is the sponsor: it pays every transaction and grants the faucet.

import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";

import { BIN, MODELS, Market, REPO, assertListensOnlyOnLoopback, freePort, freePorts } from "./harness.mjs";

const SERVICE = "0xf8d6e0586b0a20c7";
const SERVICE_KEY = "6e1a5c6fc6b8bd2f1b2e5b7c0f7a9d1e3c5b7a9f1e3d5c7b9a1f3e5d7c9b1a3f";

export const EMULATOR = process.env.FLOW_EMULATOR || undefined;

export class FlowMarket extends Market {
  constructor() {
    super();
    this.emulatorDir = mkdtempSync(join(tmpdir(), "flownet-emulator-"));
  }

  get env() {
    return {
      ...process.env,
      FLOWNET_FLOW_ACCESS: `http://127.0.0.1:${this.grpcPort}`,
      FLOWNET_FLOW_SPONSOR: `${SERVICE}:${SERVICE_KEY}`,
    };
  }

  run(key, args, json = false) {
    const argv = ["--data-dir", this.dir, "--key", key, "--models-dir", MODELS, "--network", "emulator"];
    if (json) argv.push("--json");
    const out = execFileSync(BIN, [...argv, ...args], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
      env: this.env,
    });
    return json ? JSON.parse(out) : out;
  }

  spawn(key, args, env = this.env) {
    const child = spawn(BIN, ["--data-dir", this.dir, "--key", key, "--models-dir", MODELS, "--network", "emulator", ...args], {
      stdio: ["ignore", "ignore", "pipe"],
      env,
    });
    child.log = "";
    child.stderr.on("data", (d) => {
      child.log += d;
    });
    this.children.push(child);
    return child;
  }

  async startEmulator() {
    [this.grpcPort, this.restPort, this.adminPort, this.debuggerPort] = await freePorts(4);
    const args = [
      "--host", "127.0.0.1",
      "--port", String(this.grpcPort),
      "--rest-port", String(this.restPort),
      "--admin-port", String(this.adminPort),
      "--debugger-port", String(this.debuggerPort),
      "--service-priv-key", SERVICE_KEY,
      "--service-sig-algo", "ECDSA_P256",
      "--service-hash-algo", "SHA3_256",
      "--transaction-fees",
      "--transaction-expiry", "1000",
    ];
    // In a network namespace of its own, its gRPC, REST and admin ports forwarded from
    // 127.0.0.1 (its debugger binds every interface whatever --host says). The Flow CLI
    // runs the emulator as a subcommand.
    const netns = join(REPO, "scripts", "flow-emulator-netns.py");
    const sub = basename(EMULATOR) === "flow" ? ["emulator"] : [];
    const emulator = spawn("python3", [netns, EMULATOR, ...sub, ...args], {
      cwd: this.emulatorDir,
      stdio: ["ignore", "pipe", "pipe"],
    });
    emulator.log = "";
    emulator.stdout.on("data", (d) => {
      emulator.log += d;
    });
    emulator.stderr.on("data", (d) => {
      emulator.log += d;
    });
    this.children.push(emulator);
    this.rest = `http://127.0.0.1:${this.restPort}`;
    await this.waitFor(`${this.rest}/v1/blocks?height=sealed`, emulator, 120_000);
    // gRPC, REST and admin at least; every one of them on loopback.
    assertListensOnlyOnLoopback(emulator.pid, "the Flow emulator", 3);
  }

  /** The emulator, FlowNet on it, a node and the gateway; the gateway's base URL. */
  async start() {
    await this.startEmulator();
    this.run("admin", ["flow", "deploy"]);
    const [gatewayPort, nodePort] = await freePorts(2);
    this.run("alpine", ["init"]);
    this.run("alpine", [
      "node", "register", "--name", "Alpine node", "--endpoint", `http://127.0.0.1:${nodePort}`,
      "--model", "terrain-diffusion-128=0.5",
    ]);
    this.gateway = this.spawn("alpine", [
      "web", "--listen", `127.0.0.1:${gatewayPort}`, "--flow-rest", this.rest, "--node", "--threads", "1",
    ]);
    this.url = `http://127.0.0.1:${gatewayPort}`;
    await this.waitFor(`${this.url}/healthz`, this.gateway);
    await this.waitFor(`http://127.0.0.1:${nodePort}/healthz`, this.gateway);
    return this.url;
  }

  /** Another gateway on the same chain (no node), with `args`; its base URL. */
  async startGateway(args, env = this.env) {
    const port = await freePort();
    const gateway = this.spawn("alpine", ["web", "--listen", `127.0.0.1:${port}`, "--flow-rest", this.rest, ...args], env);
    const url = `http://127.0.0.1:${port}`;
    await this.waitFor(`${url}/healthz`, gateway);
    return url;
  }

  /** `flownet sponsor`, the gasless service, with the sponsor's key; its URL. */
  async startSponsor() {
    const port = await freePort();
    const sponsor = this.spawn("alpine", ["sponsor", "--listen", `127.0.0.1:${port}`]);
    const url = `http://127.0.0.1:${port}`;
    await this.waitFor(`${url}/healthz`, sponsor);
    return url;
  }

  /** The environment of a process that knows the sponsor service only, not its key. */
  envWithSponsorService(url) {
    const env = { ...this.env, FLOWNET_FLOW_SPONSOR_URL: url };
    delete env.FLOWNET_FLOW_SPONSOR;
    return env;
  }

  async stop() {
    await super.stop();
    rmSync(this.emulatorDir, { recursive: true, force: true });
  }
}
