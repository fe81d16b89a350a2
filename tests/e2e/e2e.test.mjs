// The page end to end in Debian's chromium: a fresh browser makes a key, takes the
// faucet, reads the node table, pays for a prompt, watches the steps, sees the image
// with the right SHA-256; another browser (360 px wide) rates it and is paid the
// bounty; a third imports the first one's key file and sees its gallery. Screenshots of
// every step go to target/e2e/.

import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { Market } from "./harness.mjs";

const SHOTS = resolve(import.meta.dirname, "../../target/e2e");
mkdirSync(SHOTS, { recursive: true });

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--no-first-run",
  "--disable-sync",
];
const PROMPT = "jagged alpine peaks above a quiet valley";

let market;
let base;
let browser;
const problems = [];

/** A fresh browser profile; records console errors and any request off this gateway. */
async function context(viewport) {
  const ctx = await browser.newContext({ viewport, acceptDownloads: true });
  ctx.on("request", (r) => {
    const u = new URL(r.url());
    if (!["blob:", "data:"].includes(u.protocol) && u.origin !== base) problems.push(`request off the gateway: ${r.url()}`);
  });
  const page = await ctx.newPage();
  // Failed loads show as console errors without their URL: they are judged by their
  // responses instead, where the one expected miss is a new key's account lookup.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource")) problems.push(`console: ${m.text()}`);
  });
  page.on("response", (r) => {
    const expected = r.status() === 404 && new URL(r.url()).pathname.startsWith("/api/accounts/");
    if (r.status() >= 400 && !expected) problems.push(`${r.status()} for ${r.url()}`);
  });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  return { ctx, page };
}

let shot = 0;
async function screenshot(page, name) {
  shot += 1;
  await page.screenshot({ path: join(SHOTS, `${String(shot).padStart(2, "0")}-${name}.png`), fullPage: true });
}

async function balance(page) {
  return Number(await page.locator("#balance").textContent());
}

before(async () => {
  market = new Market();
  base = await market.start();
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
});

after(async () => {
  await browser?.close();
  await market?.stop();
});

test("a fresh browser pays for a prompt, another rates it, a third imports the key", { timeout: 240_000 }, async () => {
  // ---- Alice: a fresh browser -------------------------------------------------------
  const alice = await context({ width: 1280, height: 900 });
  const a = alice.page;
  await a.goto(base);
  await a.getByRole("button", { name: "Make my key" }).waitFor();
  await screenshot(a, "fresh-browser");

  // Keyboard only: focus and press Enter.
  await a.getByRole("button", { name: "Make my key" }).focus();
  await a.keyboard.press("Enter");
  await a.locator("#address").filter({ hasText: /^0x[0-9a-f]{16}$/ }).waitFor();
  const address = (await a.locator("#address").textContent()).trim();
  const download = a.waitForEvent("download");
  await a.getByRole("button", { name: "Save key file" }).click();
  const keyFile = join(SHOTS, "alice-key.json");
  await (await download).saveAs(keyFile);
  const saved = JSON.parse(readFileSync(keyFile, "utf8"));
  assert.equal(saved.address, address);
  assert.equal(saved.hash_algorithm, "SHA2_256");
  const account = await (await fetch(`${base}/api/accounts/${address}`)).json();
  assert.equal(account.hash_algo, "SHA2_256", "registered on first use, as a SHA2-256 key");
  await screenshot(a, "key-made");

  await a.getByRole("button", { name: "Get welcome tokens" }).click();
  await a.locator("#balance", { hasText: "1000" }).waitFor();
  assert.equal(await a.getByRole("button", { name: "Get welcome tokens" }).isVisible(), false);
  await screenshot(a, "faucet");

  // The node table: every offer, by rank (a record of deliveries outranks none at
  // all, at equal scores), then price.
  const rows = a.locator("#node-rows tr");
  await rows.nth(2).waitFor();
  const table = await rows.evaluateAll((trs) =>
    trs.map((tr) => [...tr.children].map((c) => c.textContent.replace(/\s+/g, " ").trim())),
  );
  assert.equal(table.length, 3, JSON.stringify(table));
  const keys = table.map((r) => {
    const [, delivered, missed] = r[4].match(/\((\d+) delivered, (\d+) missed/).map(Number);
    return { delivered, missed, price: Number(r[2].split(" ")[0]) };
  });
  const ranked = [...keys].sort(
    (x, y) => (x.missed === 0 && y.missed === 0 ? y.delivered - x.delivered : 0) || x.price - y.price,
  );
  assert.deepEqual(keys, ranked, "equal scores rank by record, then price");
  assert.match(table[0][3], /^3\.00 \(0 ratings, 0 FLOWNET paid\)$/);
  assert.ok(table.some((r) => r[0].startsWith("Budget node")) && table.some((r) => r[0].startsWith("Alpine node")));
  await screenshot(a, "node-table");

  // The prompt form: the image model, the node that runs in the gateway, the price.
  await a.getByLabel("Model", { exact: true }).selectOption("terrain-diffusion-128");
  const alpine = await a.locator("#node option", { hasText: "Alpine node" }).getAttribute("value");
  await a.getByLabel("Node", { exact: true }).selectOption(alpine);
  await a.getByLabel("Prompt", { exact: true }).focus();
  await a.keyboard.type(PROMPT);
  await a.locator("#price", { hasText: "You pay 0.5 FLOWNET" }).waitFor();
  await screenshot(a, "price-before-paying");
  await a.getByRole("button", { name: "Pay and run" }).focus();
  await a.keyboard.press("Enter");

  await a.locator('#steps li[data-step="claimed"].done').waitFor({ timeout: 60_000 });
  await screenshot(a, "claimed");
  await a.locator('#steps li[data-step="delivered"].done').waitFor({ timeout: 120_000 });
  const seen = (await a.locator("#steps").getAttribute("data-seen")).split(",");
  assert.deepEqual(seen, ["submitted", "claimed", "running", "delivered"]);

  // The image, its hash as the ledger has it, and as computed here from the bytes.
  await a.locator("#result-check", { hasText: "matches the ledger" }).waitFor();
  const task = (await (await fetch(`${base}/api/tasks/1`)).json()).task;
  assert.equal(task.status, "fulfilled");
  assert.equal(task.requester, address);
  assert.equal((await a.locator("#result-sha").textContent()).trim(), task.result.sha256);
  // Its IPFS CID names the same SHA-256: a raw block, base32.
  assert.match(task.result.cid, /^bafkrei[a-z2-7]{52}$/);
  assert.equal((await a.locator("#result-cid").textContent()).trim(), task.result.cid);
  assert.equal((await a.locator("#result-model").textContent()).trim(), "terrain-diffusion-128");
  assert.equal((await a.locator("#result-weights").textContent()).trim(), task.weights_sha256);
  const bytes = Buffer.from(await (await fetch(`${base}/api/blobs/${task.result.sha256}?task=1`)).arrayBuffer());
  assert.equal(createHash("sha256").update(bytes).digest("hex"), task.result.sha256);
  const size = await a.locator("#result-image").evaluate((img) => [img.naturalWidth, img.naturalHeight]);
  assert.deepEqual(size, [128, 128]);
  await screenshot(a, "image-delivered");
  assert.equal(await balance(a), 999.5);

  // Alice's gallery lists the output's NFT.
  await a.locator(`#nfts li[data-nft="${task.nft}"]`).waitFor();
  await a.locator("#gallery").scrollIntoViewIfNeeded();
  await screenshot(a, "gallery");

  // ---- Bob: another browser, phone-sized ---------------------------------------------
  const bob = await context({ width: 360, height: 780 });
  const b = bob.page;
  await b.goto(base);
  await b.getByRole("button", { name: "Make my key" }).click();
  await b.locator("#address").filter({ hasText: /^0x/ }).waitFor();
  await b.getByRole("button", { name: "Get welcome tokens" }).click();
  await b.locator("#balance", { hasText: "1000" }).waitFor();
  const card = b.locator('#outputs li[data-task="1"]');
  await card.waitFor({ timeout: 15_000 });
  const rateButton = card.getByRole("button", { name: /^Rate and earn / });
  const bounty = Number((await rateButton.textContent()).match(/earn ([0-9.]+) FLOWNET/)[1]);
  assert.ok(bounty > 0, "an unrated output pays its first raters");
  // Keyboard: choose 5 stars with the arrow keys from the preselected 4.
  await card.getByLabel("4 stars").focus();
  await b.keyboard.press("ArrowRight");
  assert.equal(await card.getByLabel("5 stars").isChecked(), true);
  await rateButton.click();
  await card.locator(".rated", { hasText: `You earned ${bounty} FLOWNET` }).waitFor();
  await b.locator("#balance", { hasText: String(1000 + bounty) }).waitFor();
  const ratings = (await (await fetch(`${base}/api/tasks/1`)).json()).ratings;
  assert.equal(ratings.length, 1);
  assert.equal(ratings[0].stars, 5);
  assert.equal(ratings[0].bounty, Math.round(bounty * 1e8));
  const overflow = await b.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow} px wider than a 360 px screen`);
  await card.scrollIntoViewIfNeeded();
  await screenshot(b, "rated-by-another-browser-360px");

  // Every control has a label.
  for (const p of [a, b]) {
    const unlabelled = await p.evaluate(() =>
      [...document.querySelectorAll("input, select, textarea")]
        .filter((c) => c.labels.length === 0 && !c.getAttribute("aria-label"))
        .map((c) => c.outerHTML),
    );
    assert.deepEqual(unlabelled, []);
  }

  // ---- Carol: a third browser imports Alice's key file -------------------------------
  const carol = await context({ width: 1024, height: 800 });
  const c = carol.page;
  await c.goto(base);
  await c.getByLabel("Use a key file").setInputFiles(keyFile);
  await c.locator("#address", { hasText: address }).waitFor();
  await c.locator(`#nfts li[data-nft="${task.nft}"]`).waitFor();
  assert.equal(await balance(c), 999.5);
  await screenshot(c, "key-imported-elsewhere");

  // Alice's browser keeps its key across a reload, and cannot export it any more.
  await a.reload();
  await a.locator("#address", { hasText: address }).waitFor();
  assert.equal(await a.getByRole("button", { name: "Save key file" }).isDisabled(), true);
  await a.locator(`#nfts li[data-nft="${task.nft}"]`).waitFor();
  await screenshot(a, "after-reload");

  assert.deepEqual(problems, []);
});
