// The page on a live Flow emulator (FLOW_EMULATOR=/path/to/flow-emulator; skipped
// without one):
// - a fresh browser makes its key, which becomes a Flow account's key (created by the
//   sponsor from an envelope the browser signed), takes the faucet and pays for a
//   prompt with Flow transactions that FCL builds and sends in the browser, signed by
//   the browser's key and paid by the gateway's sponsor; a node serving the real
//   terrain model on the emulator delivers; the page shows the image with the SHA-256
//   on chain; another browser rates it with an FCL transaction and earns the bounty;
//   a third imports the key file and finds the account;
// - a custodial OpenAI API key pays for an image from its Flow account;
// - a Flow wallet user logs in through FCL discovery and pays for a prompt;
// - the sponsor's sign-only path refuses a script that is not a template and a
//   forged payload signature; account creations past the per-IP limit get 429;
// - a gateway that knows only a `flownet sponsor` service has the page's
//   transactions paid through it.
// Screenshots go to target/e2e/flow-*.png.

import { strict as assert } from "node:assert";
import { createHash, createPrivateKey, sign } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { EMULATOR, FlowMarket } from "./flow-harness.mjs";

const SHOTS = resolve(import.meta.dirname, "../../target/e2e");
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];
const PROMPT = "glacier carved ridges under a low sun";

if (!EMULATOR) {
  console.log(
    "\n*****************************************************************\n" +
      "SKIPPED: no Flow emulator (the page on Flow; set FLOW_EMULATOR=\n" +
      "/path/to/flow-emulator to run it)\n" +
      "*****************************************************************\n",
  );
  test("the page on Flow (SKIPPED: no Flow emulator)", () => {});
} else {
  let market;
  let base;
  let browser;
  const problems = [];

  before(async () => {
    mkdirSync(SHOTS, { recursive: true });
    market = new FlowMarket();
    base = await market.start();
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  });

  after(async () => {
    await browser?.close();
    if (problems.length > 0 || process.exitCode) console.error(market?.logs());
    await market?.stop();
  });

  /** Waits for `locator`, failing at once with the page's error when one shows. */
  async function settled(page, locator, timeout) {
    const error = page.locator("#error:not([hidden])");
    await locator.or(error).first().waitFor({ timeout });
    if (await error.isVisible()) assert.fail(`the page shows an error: ${await error.textContent()}; ${problems.join("; ")}`);
  }

  const shot = (page, name) => page.screenshot({ path: join(SHOTS, `flow-${name}.png`), fullPage: true });

  test("a fresh browser's key becomes a Flow account that pays for a prompt with FCL", { timeout: 300_000 }, async () => {
    const config = await (await fetch(`${base}/api/flow/config`)).json();
    assert.equal(config.network, "emulator");
    assert.equal(config.payer, "0xf8d6e0586b0a20c7");
    assert.equal(config.access_node, "/api/flow/access");

    const ctx = await browser.newContext({ viewport: { width: 360, height: 800 }, acceptDownloads: true });
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
    const signs = [];
    page.on("request", (r) => {
      if (new URL(r.url()).pathname === "/api/flow/sign") signs.push(r.postDataJSON());
    });

    await page.goto(base);
    await page.getByRole("button", { name: "Make my key" }).waitFor();
    await page.locator("#network", { hasText: "On Flow emulator" }).waitFor();
    await shot(page, "fresh-browser");

    // The key: made in the browser, then a Flow account (the sponsor creates it).
    await page.getByRole("button", { name: "Make my key" }).click();
    await settled(page, page.locator("#address", { hasText: /^0x[0-9a-f]{16}$/ }), 60_000);
    const address = (await page.locator("#address").textContent()).trim();
    assert.match(address, /^0x[0-9a-f]{16}$/);
    const account = await (await fetch(`${base}/api/accounts/${address}`)).json();
    assert.equal(account.hash_algo, "SHA2_256", "the Flow account key signs with SHA2-256, as WebCrypto does");
    // The account's Flow key is the browser's key.
    const flowAccount = await (await fetch(`${market.rest}/v1/accounts/${address.slice(2)}?expand=keys`)).json();
    assert.equal(flowAccount.keys.length, 1);
    assert.equal(flowAccount.keys[0].signing_algorithm, "ECDSA_P256");
    assert.equal(flowAccount.keys[0].hashing_algorithm, "SHA2_256");
    const download = page.waitForEvent("download");
    await page.getByRole("button", { name: "Save key file" }).click();
    const keyFile = join(SHOTS, "flow-key.json");
    await (await download).saveAs(keyFile);
    const saved = JSON.parse(readFileSync(keyFile, "utf8"));
    assert.equal(`0x${flowAccount.keys[0].public_key.replace(/^0x/, "")}`, `0x${saved.public_key}`);
    assert.deepEqual(saved.flow_addresses, { emulator: address });
    await shot(page, "account-created");

    // The faucet: a Flow transaction the browser signs; the sponsor pays and grants.
    await page.getByRole("button", { name: "Get welcome tokens" }).click();
    await settled(page, page.locator("#balance", { hasText: "1000" }), 60_000);
    await shot(page, "faucet");

    // The prompt: the submit transaction, built by FCL in the browser.
    await page.getByLabel("Model", { exact: true }).selectOption("terrain-diffusion-128");
    await page.getByLabel("Prompt", { exact: true }).fill(PROMPT);
    await page.locator("#price", { hasText: "You pay 0.5 FLOWNET" }).waitFor();
    await page.getByRole("button", { name: "Pay and run" }).click();
    await settled(page, page.locator("#status:not([hidden])"), 60_000);
    const taskId = Number((await page.locator("#status-h").textContent()).match(/#(\d+)/)[1]);
    await page.locator('#steps li[data-step="delivered"].done').waitFor({ timeout: 180_000 });
    await page.locator("#result-check", { hasText: "matches the ledger" }).waitFor({ timeout: 30_000 });

    const task = (await (await fetch(`${base}/api/tasks/${taskId}`)).json()).task;
    assert.equal(task.status, "fulfilled");
    assert.equal(task.requester, address);
    assert.equal(task.prompt, PROMPT);
    assert.equal((await page.locator("#result-sha").textContent()).trim(), task.result.sha256);
    assert.equal((await page.locator("#result-weights").textContent()).trim(), task.weights_sha256);
    const bytes = Buffer.from(await (await fetch(`${base}/api/blobs/${task.result.sha256}?task=${taskId}`)).arrayBuffer());
    assert.equal(createHash("sha256").update(bytes).digest("hex"), task.result.sha256);
    const size = await page.locator("#result-image").evaluate((img) => [img.naturalWidth, img.naturalHeight]);
    assert.deepEqual(size, [128, 128]);
    await page.locator("#balance", { hasText: "999.5" }).waitFor({ timeout: 15_000 });
    await page.locator(`#nfts li[data-nft="${task.nft}"]`).waitFor({ timeout: 15_000 });
    await shot(page, "image-delivered");

    // The sponsor was asked to sign (never to send) the faucet and the submit, each
    // time for a transaction whose payload the browser's key signed.
    assert.equal(signs.length, 2, JSON.stringify(signs));
    for (const s of signs) {
      assert.equal(s.payer, "0xf8d6e0586b0a20c7");
      assert.equal(s.proposal_key.address, address);
      assert.deepEqual(s.payload_signatures.map((p) => p.address), [address]);
    }

    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 360 px screen`);

    // Another browser: its own key and Flow account; it rates the output with an FCL
    // transaction and is paid the bounty.
    const bobCtx = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    const bob = await bobCtx.newPage();
    bob.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    await bob.goto(base);
    await bob.getByRole("button", { name: "Make my key" }).click();
    await settled(bob, bob.locator("#address", { hasText: /^0x[0-9a-f]{16}$/ }), 60_000);
    await bob.getByRole("button", { name: "Get welcome tokens" }).click();
    await settled(bob, bob.locator("#balance", { hasText: "1000" }), 60_000);
    const card = bob.locator(`#outputs li[data-task="${taskId}"]`);
    await card.waitFor({ timeout: 15_000 });
    const rateButton = card.getByRole("button", { name: /^Rate and earn / });
    const bounty = Number((await rateButton.textContent()).match(/earn ([0-9.]+) FLOWNET/)[1]);
    assert.ok(bounty > 0);
    await card.getByLabel("5 stars").check();
    await rateButton.click();
    await settled(bob, card.locator(".rated", { hasText: `You earned ${bounty} FLOWNET` }), 60_000);
    const ratings = (await (await fetch(`${base}/api/tasks/${taskId}`)).json()).ratings;
    assert.equal(ratings.length, 1);
    assert.equal(ratings[0].stars, 5);
    await shot(bob, "rated-by-another-browser");

    // A third browser imports the key file: the same Flow account and its NFT.
    const carolCtx = await browser.newContext({ viewport: { width: 800, height: 800 } });
    const carol = await carolCtx.newPage();
    carol.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    await carol.goto(base);
    await carol.getByLabel("Use a key file").setInputFiles(keyFile);
    await settled(carol, carol.locator("#address", { hasText: address }), 30_000);
    await carol.locator(`#nfts li[data-nft="${task.nft}"]`).waitFor({ timeout: 15_000 });
    await shot(carol, "key-imported-elsewhere");
    assert.deepEqual(problems, []);
  });

  test("a custodial OpenAI API key works on Flow", { timeout: 180_000 }, async () => {
    // The sponsor creates the key's Flow account and grants it the faucet.
    const made = market.run("alpine", ["web", "keys", "create", "--label", "flow-app", "--max-price", "1", "--faucet"], true);
    assert.match(made.address, /^0x[0-9a-f]{16}$/);
    assert.equal(made.funded, "1000");
    const r = await fetch(`${base}/v1/images/generations`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${made.key}` },
      body: JSON.stringify({ model: "terrain-diffusion-128", prompt: "a dune sea at dusk", response_format: "b64_json" }),
    });
    const body = await r.json();
    assert.equal(r.status, 200, JSON.stringify(body));
    const image = body.data[0];
    const bytes = Buffer.from(image.b64_json, "base64");
    assert.equal(createHash("sha256").update(bytes).digest("hex"), image.sha256);
    const task = (await (await fetch(`${base}/api/tasks/${image.task_id}`)).json()).task;
    assert.equal(task.requester, made.address, "paid from the key's Flow account");
    assert.equal(task.result.sha256, image.sha256);
    const listed = market.run("alpine", ["web", "keys", "list"], true).find((k) => k.id === made.id);
    assert.equal(listed.network, "emulator");
    assert.equal(listed.balance, "999.5");
  });

  test("a Flow wallet user logs in through FCL discovery and pays for a prompt the sponsor pays for", { timeout: 180_000 }, async () => {
    // No Flow wallet installs from the registries here, so a small one stands in: it
    // speaks FCL's frame protocol (VIEW:READY, then an AuthnResponse or a
    // CompositeSignature) for an account made with `flownet init`, and signs with
    // that account's own key (P-256, SHA3-256, as Flow's wallets do).
    const wally = market.run("wally", ["init"], true);
    const keyFile = JSON.parse(readFileSync(join(market.dir, "keys", "wally.json"), "utf8"));
    const addr = keyFile.flow_addresses.emulator;
    assert.equal(wally.address, addr);
    const pub = Buffer.from(keyFile.public_key, "hex");
    const key = createPrivateKey({
      format: "jwk",
      key: {
        kty: "EC",
        crv: "P-256",
        x: pub.subarray(0, 32).toString("base64url"),
        y: pub.subarray(32).toString("base64url"),
        d: Buffer.from(keyFile.private_key, "hex").toString("base64url"),
      },
    });
    const asked = [];
    let origin;
    const page = `<!doctype html><title>Stand-in wallet</title><p>Stand-in wallet</p><script>
      const kind = location.pathname.split("/").pop();
      addEventListener("message", async (e) => {
        if (e.data?.type !== "FCL:VIEW:READY:RESPONSE") return;
        const r = await fetch("/api/" + kind, { method: "POST", body: JSON.stringify(e.data.body ?? null) });
        parent.postMessage({ type: "FCL:VIEW:RESPONSE", f_type: "PollingResponse", f_vsn: "1.0.0", status: "APPROVED", reason: null, data: await r.json() }, "*");
      });
      parent.postMessage({ type: "FCL:VIEW:READY" }, "*");
    </script>`;
    const wallet = createServer(async (req, res) => {
      asked.push(`${req.method} ${req.url}`);
      if (req.method === "GET") {
        res.writeHead(200, { "content-type": "text/html" });
        return res.end(page);
      }
      let body = "";
      for await (const chunk of req) body += chunk;
      const service = (type) => ({
        f_type: "Service", f_vsn: "1.0.0", type, uid: `stand-in#${type}`, method: "IFRAME/RPC",
        endpoint: `${origin}/fcl/${type}`, id: addr, identity: { address: addr, keyId: 0 },
      });
      let answer;
      if (req.url === "/api/authn") {
        answer = { f_type: "AuthnResponse", f_vsn: "1.0.0", addr, services: [service("authn"), service("authz")] };
      } else {
        const signable = JSON.parse(body);
        const signature = sign("sha3-256", Buffer.from(signable.message, "hex"), { key, dsaEncoding: "ieee-p1363" });
        answer = { f_type: "CompositeSignature", f_vsn: "1.0.0", addr, keyId: 0, signature: signature.toString("hex") };
      }
      res.writeHead(200, { "content-type": "application/json", "access-control-allow-origin": "*" });
      res.end(JSON.stringify(answer));
    });
    await new Promise((ok) => wallet.listen(0, "127.0.0.1", ok));
    origin = `http://127.0.0.1:${wallet.address().port}`;
    try {
      const url = await market.startGateway(["--fcl-discovery", `${origin}/fcl/authn`]);
      const config = await (await fetch(`${url}/api/flow/config`)).json();
      assert.equal(config.discovery_wallet, `${origin}/fcl/authn`);
      const csp = (await fetch(url)).headers.get("content-security-policy");
      assert.ok(csp.endsWith(`; frame-src ${origin}`), csp);
      assert.ok(!(await fetch(base)).headers.get("content-security-policy").includes("frame-src"));

      const ctx = await browser.newContext({ viewport: { width: 360, height: 800 } });
      const p = await ctx.newPage();
      const errors = [];
      p.on("pageerror", (e) => errors.push(e.message));
      p.on("console", (m) => {
        // FCL logs, as an error, that WalletConnect is not configured: this page has no
        // WalletConnect project (its relay is a third-party service), on purpose.
        const wc = m.text().includes("FCL WalletConnect Service Plugin");
        if (m.type() === "error" && !wc && !m.text().startsWith("Failed to load resource")) errors.push(`console: ${m.text()}`);
      });
      await p.goto(url);
      const login = p.getByRole("button", { name: "Log in with a Flow wallet" });
      await login.waitFor();
      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 360 px screen`);
      await login.click();
      await settled(p, p.locator("#who", { hasText: `Signed in as ${addr} (Flow wallet)` }), 30_000);
      await p.locator("#balance", { hasText: "1000" }).waitFor({ timeout: 15_000 });
      assert.equal(await p.getByRole("button", { name: "Save key file" }).isVisible(), false);
      await shot(p, "wallet-logged-in");

      // The wallet signs as proposer and authorizer; the sponsor pays.
      await p.getByLabel("Model", { exact: true }).selectOption("terrain-diffusion-128");
      await p.getByLabel("Prompt", { exact: true }).fill("a wallet's first mountain");
      await p.getByRole("button", { name: "Pay and run" }).click();
      await settled(p, p.locator("#status:not([hidden])"), 60_000);
      await p.locator("#result-check", { hasText: "matches the ledger" }).waitFor({ timeout: 120_000 });
      const taskId = Number((await p.locator("#status-h").textContent()).match(/#(\d+)/)[1]);
      const task = (await (await fetch(`${url}/api/tasks/${taskId}`)).json()).task;
      assert.equal(task.requester, addr);
      assert.equal(task.status, "fulfilled");
      assert.ok(asked.includes("POST /api/authn") && asked.includes("POST /api/authz"), JSON.stringify(asked));
      await shot(p, "wallet-paid");
      assert.deepEqual(errors, []);

      // Without a discovery wallet the button is not offered.
      const plain = await ctx.newPage();
      await plain.goto(base);
      await plain.getByRole("button", { name: "Make my key" }).waitFor();
      assert.equal(await plain.getByRole("button", { name: "Log in with a Flow wallet" }).isVisible(), false);
    } finally {
      wallet.close();
    }
  });

  test("the sponsor's sign-only path refuses what it must not pay for", { timeout: 60_000 }, async () => {
    const post = async (body) => {
      const r = await fetch(`${base}/api/flow/sign`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      return [r.status, (await r.json()).error];
    };
    const block = await (await fetch(`${market.rest}/v1/blocks?height=sealed`)).json();
    const alpine = JSON.parse(readFileSync(join(market.dir, "keys", "alpine.json"), "utf8"));
    const user = alpine.flow_addresses.emulator;
    const tx = {
      script: "transaction { prepare(a: &Account) { log(a.address) } }",
      arguments: [],
      reference_block_id: block[0].header.id,
      gas_limit: 100,
      proposal_key: { address: user, key_index: 0, sequence_number: 0 },
      payer: "0xf8d6e0586b0a20c7",
      authorizers: [user],
      payload_signatures: [{ address: user, key_index: 0, signature: "00".repeat(64) }],
    };
    // Not one of FlowNet's templates: refused before any signature is checked.
    let [status, error] = await post(tx);
    assert.equal(status, 403);
    assert.equal(error.code, "not_whitelisted");
    // A template with a payload signature that is not the account key's.
    const built = await (
      await fetch(`${base}/api/flow/transaction`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ action: { type: "cancel", task: 1 } }),
      })
    ).json();
    [status, error] = await post({ ...tx, script: built.cadence, arguments: built.arguments.map((a) => JSON.stringify(a)) });
    assert.equal(status, 401);
    assert.equal(error.code, "bad_signature");
  });

  test("account creation, which the sponsor pays for, is rate-limited per client", { timeout: 60_000 }, async () => {
    const info = await (await fetch(`${base}/api/info`)).json();
    const publicKey = JSON.parse(readFileSync(join(SHOTS, "flow-key.json"), "utf8")).public_key;
    const statuses = [];
    for (let i = 0; i < 4; i++) {
      const r = await fetch(`${base}/api/relay`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({
          ledger: info.ledger,
          signer: "0x0000000000000001",
          sequence: 0,
          action: { type: "create_account", public_key: publicKey, hash_algo: "SHA2_256" },
          signature: "11".repeat(64),
        }),
      });
      statuses.push([r.status, r.headers.get("retry-after")]);
      if (r.status === 429) break;
    }
    // The default is 6 a minute with bursts of 3, and the first test made two.
    const last = statuses.at(-1);
    assert.equal(last[0], 429, JSON.stringify(statuses));
    assert.ok(Number(last[1]) >= 1);
    assert.ok(statuses.slice(0, -1).every(([s]) => s === 401), JSON.stringify(statuses));
  });

  test("with only a sponsor service, a fresh key onboards and its transactions are paid through it", { timeout: 120_000 }, async () => {
    const service = await market.startSponsor();
    const url = await market.startGateway([], market.envWithSponsorService(service));
    const config = await (await fetch(`${url}/api/flow/config`)).json();
    assert.equal(config.payer, "0xf8d6e0586b0a20c7");
    // The service creates accounts and co-signs the faucet: the gateway holds no key.
    assert.equal(config.faucet, true);
    assert.equal(config.create_account, true);

    const ctx = await browser.newContext({ viewport: { width: 1024, height: 800 } });
    const page = await ctx.newPage();
    const errors = [];
    page.on("pageerror", (e) => errors.push(e.message));
    // A new key: its Flow account made by the service, then the faucet, co-signed by
    // the service (sign only: FCL in the page sends it).
    await page.goto(url);
    await page.getByRole("button", { name: "Make my key" }).click();
    await settled(page, page.locator("#address", { hasText: /^0x[0-9a-f]{16}$/ }), 60_000);
    const address = (await page.locator("#address").textContent()).trim();
    const flowAccount = await (await fetch(`${market.rest}/v1/accounts/${address.slice(2)}?expand=keys`)).json();
    assert.equal(flowAccount.keys[0].hashing_algorithm, "SHA2_256");
    await page.getByRole("button", { name: "Get welcome tokens" }).click();
    await settled(page, page.locator("#balance", { hasText: "1000" }), 60_000);
    const before = Number(await page.locator("#balance").textContent());
    await page.getByLabel("Model", { exact: true }).selectOption("terrain-diffusion-128");
    await page.getByLabel("Prompt", { exact: true }).fill("paid through the sponsor service");
    await page.getByRole("button", { name: "Pay and run" }).click();
    await settled(page, page.locator("#status:not([hidden])"), 60_000);
    await page.locator("#result-check", { hasText: "matches the ledger" }).waitFor({ timeout: 120_000 });
    const taskId = Number((await page.locator("#status-h").textContent()).match(/#(\d+)/)[1]);
    const task = (await (await fetch(`${url}/api/tasks/${taskId}`)).json()).task;
    assert.equal(task.requester, address);
    await page.locator("#balance", { hasText: String(before - 0.5) }).waitFor({ timeout: 15_000 });
    await shot(page, "paid-through-the-sponsor-service");
    assert.deepEqual(errors, []);
  });
}
