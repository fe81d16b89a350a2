// Text to speech on the page, in Debian's chromium against a real gateway whose node
// runs Piper's joe voice: a fresh browser makes a key, takes the faucet, picks the
// speech model, writes a text, pays, and gets a player for the delivered WAV, whose
// hash is checked against the ledger's. Screenshots go to target/e2e/.

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
const FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync", "--autoplay-policy=no-user-gesture-required"];
const MODEL = "piper-joe-medium";

let market;
let base;
let browser;
const problems = [];

before(async () => {
  market = new Market();
  base = await market.startOne("speaker", "Speaking node", `${MODEL}=0.05`);
  assertListensOnlyOnLoopback(market.gateway.pid, "the gateway", 2);
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
});

after(async () => {
  await browser?.close();
  await market?.stop();
});

test("a text is spoken and played back", { timeout: 180_000 }, async () => {
  const { ctx, page } = await walletPage(browser, base, problems);
  await page.getByLabel("Model", { exact: true }).selectOption(MODEL);
  const box = page.getByLabel("Text to speak");
  await box.waitFor();
  await box.fill("Welcome to FlowNet. Your node is ready.");
  await page.getByRole("button", { name: "Pay and run" }).click();

  const audio = page.locator("#result-audio");
  await audio.waitFor({ timeout: 120_000 });
  await page.locator("#result-check", { hasText: "matches the ledger" }).waitFor();
  await page.screenshot({ path: join(SHOTS, "speech-01-result.png"), fullPage: true });
  // The browser decodes it: a duration of a few seconds, as the page says.
  const duration = await audio.evaluate(
    (a) =>
      new Promise((ok) => {
        if (a.readyState >= 1) ok(a.duration);
        a.addEventListener("loadedmetadata", () => ok(a.duration));
        a.addEventListener("error", () => ok(`error ${a.error?.code}`));
        setTimeout(() => ok("no metadata in 15 s"), 15_000);
      }),
  );
  assert.ok(duration > 1 && duration < 8, `duration ${duration}`);
  assert.match(await page.locator("#result-duration").textContent(), /^\d+\.\d\d s of speech$/);

  const sha = (await page.locator("#result-sha").textContent()).trim();
  const { tasks } = await (await fetch(`${base}/api/tasks`)).json();
  const task = tasks.find((t) => t.result?.sha256 === sha);
  assert.ok(task, "the delivered task is listed");
  assert.equal(task.model_id, MODEL);
  const bytes = Buffer.from(await (await fetch(`${base}/api/blobs/${sha}?task=${task.id}`)).arrayBuffer());
  assert.equal(createHash("sha256").update(bytes).digest("hex"), sha);
  assert.equal(bytes.subarray(0, 4).toString(), "RIFF");
  assert.deepEqual(problems, []);
  await ctx.close();
});
