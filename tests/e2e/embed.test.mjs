// Embeddings on the page, in Debian's chromium against a real gateway whose node runs
// the real all-MiniLM-L6-v2: a fresh browser makes a key, takes the faucet, picks the
// embedding model, writes three texts (one per line), sees the escrow for the most
// tokens they can be, pays, and sees the texts' cosine similarities; the output is
// checked against its hash, the paraphrase is the nearer, and the tokens not read came
// back. An empty box is refused next to the form. Screenshots go to target/e2e/.

import { strict as assert } from "node:assert";
import { createHash } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { Market, assertListensOnlyOnLoopback, walletPage } from "./harness.mjs";

const SHOTS = resolve(import.meta.dirname, "../../target/e2e");
mkdirSync(SHOTS, { recursive: true });

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"];
const MODEL = "all-minilm-l6-v2";
// 0.5 FLOWNET per 1,000 tokens, in units of 1e-8.
const UNIT_PRICE = 50_000_000;
const TEXTS = ["A man is playing a guitar.", "Someone strums a guitar on stage.", "The stock market fell sharply today."];

let market;
let base;
let browser;
const problems = [];

before(async () => {
  market = new Market();
  base = await market.startEmbed("0.5");
  assertListensOnlyOnLoopback(market.gateway.pid, "the gateway", 2);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
});

after(async () => {
  await browser?.close();
  await market?.stop();
});

async function json(path) {
  const r = await fetch(`${base}${path}`);
  assert.equal(r.status, 200, path);
  return r.json();
}

test("texts are embedded, compared and paid per token read", { timeout: 180_000 }, async () => {
  const { ctx, page } = await walletPage(browser, base, problems);

  await page.getByLabel("Model", { exact: true }).selectOption(MODEL);
  const box = page.getByLabel("Texts to embed (one per line)");
  await box.waitFor();
  // Empty: refused before anything is signed.
  await box.fill("  \n ");
  await page.getByRole("button", { name: "Pay and run" }).click();
  await page.getByText("write a text to embed first", { exact: false }).first().waitFor();

  await box.fill(TEXTS.join("\n"));
  const bound = TEXTS.reduce((n, t) => n + Buffer.byteLength(t) + 2, 0);
  await page.locator("#price", { hasText: `3 texts: you escrow ${(Math.floor((UNIT_PRICE * bound) / 1000) / 1e8).toString()} FLOWNET for at most ${bound} tokens` }).waitFor();
  await page.screenshot({ path: join(SHOTS, "embed-01-texts.png"), fullPage: true });
  await page.getByRole("button", { name: "Pay and run" }).click();

  await page.locator("#result-similarity").waitFor({ timeout: 120_000 });
  await page.locator("#result-check", { hasText: "matches the ledger" }).waitFor();
  await page.screenshot({ path: join(SHOTS, "embed-02-result.png"), fullPage: true });
  const cells = await page.locator("#result-similarity tbody tr").evaluateAll((rows) =>
    rows.map((r) => [...r.querySelectorAll("td")].map((td) => Number(td.textContent))),
  );
  assert.equal(cells.length, 3);
  assert.ok(cells[0][1] > cells[0][2] + 0.3, `the paraphrase is nearer: ${JSON.stringify(cells)}`);
  assert.match(await page.locator("#result-embeddings").textContent(), /3 vectors of 384 dimensions from \d+ tokens/);

  // The ledger: escrowed for the bound, paid for the tokens read, the rest back.
  const sha = (await page.locator("#result-sha").textContent()).trim();
  const { tasks } = await json("/api/tasks");
  const task = tasks.find((t) => t.result?.sha256 === sha) ?? (await json(`/api/tasks/${tasks[0].id}`)).task;
  assert.equal(task.model_id, MODEL);
  assert.equal(task.status, "fulfilled");
  assert.equal(task.max_units, bound);
  const bytes = Buffer.from(await (await fetch(`${base}/api/blobs/${sha}?task=${task.id}`)).arrayBuffer());
  assert.equal(createHash("sha256").update(bytes).digest("hex"), sha);
  const out = JSON.parse(bytes.toString("utf8"));
  assert.equal(out.embeddings.length, 3);
  assert.equal(task.units, out.usage.prompt_tokens);
  assert.equal(task.price, Math.floor((UNIT_PRICE * bound) / 1000));
  assert.equal(task.refunded, task.price - Math.floor((UNIT_PRICE * task.units) / 1000));
  assert.deepEqual(problems, []);
  await ctx.close();
});
