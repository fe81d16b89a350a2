// Reading text in an image on the page, in Debian's chromium against a real gateway
// whose node runs the real PP-OCRv4: a fresh browser makes a key, takes the faucet,
// picks the OCR model, is refused a file that is not an image before anything is
// paid, chooses an image of text rendered here (two sizes, several lines), pays, and
// sees the text read back exactly; the output is checked against its hash and the
// task's input is the image by its SHA-256. Screenshots go to target/e2e/.

import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { after, before, test } from "node:test";

import { chromium } from "playwright-core";

import { Market, REPO, assertListensOnlyOnLoopback, walletPage } from "./harness.mjs";

const SHOTS = resolve(import.meta.dirname, "../../target/e2e");
mkdirSync(SHOTS, { recursive: true });

const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync"];
const PYTHON = process.env.FLOWNET_PYTHON ?? join(REPO, ".venv/bin/python");
const MODEL = "pp-ocrv4";
const LINES = [
  [42, "Meeting notes, 8 December"],
  [24, "Ship the reader before lunch"],
  [24, "Budget: 3,400 FLOWNET"],
];

let market;
let base;
let browser;
const problems = [];

before(async () => {
  market = new Market();
  base = await market.startOcr("0.2");
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

/** A PNG of LINES, rendered by the OCR reference script (Pillow's own font). */
function renderLines() {
  const path = join(mkdtempSync(join(tmpdir(), "flownet-ocr-")), "notes.png");
  execFileSync(PYTHON, [join(REPO, "benches/python/ocr_ref.py"), "--render", path, ...LINES.flatMap(([s, t]) => ["--line", `${s}:${t}`])]);
  return readFileSync(path);
}

test("the gateway holds only images that decode", async () => {
  const r = await fetch(`${base}/api/inputs`, { method: "POST", headers: { "content-type": "image/png" }, body: "not a png" });
  assert.equal(r.status, 400);
  assert.equal((await r.json()).error.code, "invalid_image");
});

test("an image's text is read back exactly, paid per image", { timeout: 180_000 }, async () => {
  const { ctx, page } = await walletPage(browser, base, problems);
  await page.getByLabel("Model", { exact: true }).selectOption(MODEL);
  const file = page.getByLabel("Image (PNG or JPEG)");
  await file.waitFor();
  assert.equal(await page.locator("#prompt-field").isHidden(), true, "an image model takes no prompt");

  // Not an image: refused here, before anything is signed or held.
  const before = (await json("/api/tasks")).tasks.length;
  await file.setInputFiles({ name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("just words") });
  await page.getByRole("button", { name: "Pay and run" }).click();
  await page.getByText("not a PNG or JPEG", { exact: false }).first().waitFor();
  assert.equal((await json("/api/tasks")).tasks.length, before);

  const png = renderLines();
  await file.setInputFiles({ name: "notes.png", mimeType: "image/png", buffer: png });
  await page.locator("#image-preview:not([hidden])").waitFor();
  await page.screenshot({ path: join(SHOTS, "ocr-01-image.png"), fullPage: true });
  await page.getByRole("button", { name: "Pay and run" }).click();

  await page.locator("#result-text").waitFor({ timeout: 120_000 });
  await page.locator("#result-check", { hasText: "matches the ledger" }).waitFor();
  await page.screenshot({ path: join(SHOTS, "ocr-02-result.png"), fullPage: true });
  const want = LINES.map(([, t]) => t).join("\n");
  assert.equal(await page.locator("#result-text").textContent(), want);

  // The ledger: the task's input is the image, by its hash; the output is the reading.
  const sha = (await page.locator("#result-sha").textContent()).trim();
  const { tasks } = await json("/api/tasks");
  const task = tasks.find((t) => t.result?.sha256 === sha);
  assert.ok(task, "the delivered task is listed");
  assert.equal(task.model_id, MODEL);
  assert.equal(task.status, "fulfilled");
  const imageSha = createHash("sha256").update(png).digest("hex");
  assert.equal(task.prompt, `sha256:${imageSha}`);
  assert.equal(task.input.sha256, imageSha);
  assert.equal(task.input.size, png.length);
  assert.equal(task.price, 20_000_000);
  const bytes = Buffer.from(await (await fetch(`${base}/api/blobs/${sha}?task=${task.id}`)).arrayBuffer());
  assert.equal(createHash("sha256").update(bytes).digest("hex"), sha);
  assert.equal(JSON.parse(bytes.toString("utf8")).text, want);
  const account = await json(`/api/accounts/${task.requester}`);
  assert.equal(account.balance_units, 1000 * 1e8 - 20_000_000, "the account paid the price of one image");
  assert.deepEqual(problems, []);
  await ctx.close();
});
