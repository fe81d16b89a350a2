// The chat view end to end in Debian's chromium, against a real gateway whose node runs
// the real SmolLM2-135M-Instruct: a fresh browser makes a key, takes the faucet, picks
// the chat model, asks a question and watches the answer stream in token by token; the
// answer shown is the delivered output's text, checked against its hash, and what was
// escrowed is what was paid plus what came back. A second question carries the whole
// conversation; a third makes it longer than the ledger's prompt, so it goes as an input
// the gateway holds by its hash; a fourth is stopped while it streams. Screenshots go to target/e2e/.

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
const MODEL = "smollm2-135m-instruct";
// 0.02 FLOWNET per 1,000 tokens, in units of 1e-8.
const UNIT_PRICE = 2_000_000;

let market;
let base;
let browser;
const problems = [];

before(async () => {
  market = new Market();
  base = await market.startChat("0.02");
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

/** Records, in the page, the text of every assistant bubble each time it changes while
 * it is still streaming. */
async function watchStreaming(page) {
  await page.evaluate(() => {
    window.__streamed = [];
    new MutationObserver(() => {
      for (const b of document.querySelectorAll("#chat-log .turn.assistant.streaming")) {
        const t = b.querySelector(".text").textContent;
        const seen = window.__streamed;
        if (t && seen[seen.length - 1]?.text !== t) seen.push({ task: b.dataset.task, text: t });
      }
    }).observe(document.getElementById("chat-log"), { subtree: true, childList: true, characterData: true });
  });
}

/** Sends `text` with at most `max` tokens and returns the answer's bubble and task id. */
async function send(page, text, max, nth) {
  await page.getByLabel("Most tokens per answer").fill(String(max));
  await page.getByLabel("Message", { exact: true }).fill(text);
  await page.getByRole("button", { name: "Send" }).click();
  const answer = page.locator("#chat-log .turn.assistant").nth(nth);
  await answer.waitFor();
  const id = Number(await answer.getAttribute("data-task"));
  assert.ok(id > 0);
  return { answer, id };
}

/** Waits for answer `id` to be checked, and checks it against the ledger and the bytes. */
async function checked(page, answer, id, max) {
  await answer.locator(".check", { hasText: "matches the ledger" }).waitFor({ timeout: 120_000 });
  const { task } = await json(`/api/tasks/${id}`);
  assert.equal(task.status, "fulfilled");
  assert.equal(task.model_id, MODEL);
  const bytes = Buffer.from(await (await fetch(`${base}/api/blobs/${task.result.sha256}?task=${id}`)).arrayBuffer());
  assert.equal(createHash("sha256").update(bytes).digest("hex"), task.result.sha256);
  const output = JSON.parse(bytes.toString("utf8"));
  assert.ok(output.text.length > 0, "the model wrote something");
  // The page shows the delivered text, and the hash it computed is the ledger's.
  assert.equal(await answer.locator(".text").textContent(), output.text);
  assert.equal((await answer.locator(".sha").textContent()).trim(), task.result.sha256);
  // Escrowed: max tokens at the unit price; paid: the tokens written; the rest came back.
  const [escrowed, paid, refunded] = await Promise.all(
    ["escrowed", "paid", "refunded"].map(async (k) => Number(await answer.getAttribute(`data-${k}`))),
  );
  assert.equal(task.max_units, max);
  assert.equal(escrowed, Math.floor((UNIT_PRICE * max) / 1000));
  assert.equal(escrowed, task.price);
  assert.equal(task.units, output.usage.completion_tokens);
  assert.equal(paid, Math.floor((UNIT_PRICE * task.units) / 1000));
  assert.equal(refunded, task.refunded);
  assert.equal(paid + refunded, escrowed);
  assert.match(await answer.locator(".paid").textContent(), new RegExp(`for ${task.units} tokens`));
  return { task, output };
}

test("a chat streams its answers, checked and paid per token, over four turns", { timeout: 300_000 }, async () => {
  const { ctx, page } = await walletPage(browser, base, problems);

  // The chat model shows the chat view, not the one-shot prompt.
  await page.getByLabel("Model", { exact: true }).selectOption(MODEL);
  await page.locator("#chat").waitFor();
  assert.equal(await page.getByLabel("Prompt", { exact: true }).isVisible(), false);
  assert.equal(await page.getByRole("button", { name: "Pay and run" }).isVisible(), false);
  await page.getByLabel("Most tokens per answer").fill("24");
  await page.locator("#chat-price", { hasText: "Each answer escrows 0.00048 FLOWNET (24 tokens at 0.02 FLOWNET per 1,000)" }).waitFor();
  await page.screenshot({ path: join(SHOTS, "chat-01-view.png"), fullPage: true });

  // A question sent empty is refused next to the chat box, before anything is signed.
  await page.getByLabel("Message", { exact: true }).fill("   ");
  await page.getByRole("button", { name: "Send" }).click();
  await page.locator("#chat-error", { hasText: "Write a message first." }).waitFor();
  assert.equal((await json("/api/info")).globals.task_count, 0);

  // ---- the first turn -----------------------------------------------------------------
  await watchStreaming(page);
  const q1 = "What is the capital of France?";
  const first = await send(page, q1, 24, 0);
  assert.equal(await page.locator("#chat-error").isVisible(), false);
  const one = await checked(page, first.answer, first.id, 24);
  const streamed = await page.evaluate((id) => window.__streamed.filter((s) => s.task === String(id)).map((s) => s.text), first.id);
  // Text appeared before the answer was done, growing piece by piece into the answer.
  assert.ok(streamed.length >= 2, `streamed: ${JSON.stringify(streamed)}`);
  for (let i = 1; i < streamed.length; i++) assert.ok(streamed[i].startsWith(streamed[i - 1]), JSON.stringify(streamed));
  assert.ok(one.output.text.startsWith(streamed[streamed.length - 1]), JSON.stringify({ streamed, text: one.output.text }));
  assert.deepEqual(JSON.parse(one.task.prompt), { messages: [{ role: "user", content: q1 }] });
  await page.screenshot({ path: join(SHOTS, "chat-02-first-answer.png"), fullPage: true });

  // ---- the second turn carries the whole conversation --------------------------------
  const q2 = "And of Germany?";
  const second = await send(page, q2, 16, 1);
  const two = await checked(page, second.answer, second.id, 16);
  assert.deepEqual(JSON.parse(two.task.prompt), {
    messages: [
      { role: "user", content: q1 },
      { role: "assistant", content: one.output.text },
      { role: "user", content: q2 },
    ],
  });
  assert.ok(two.task.id > one.task.id);
  const spent = one.task.price - one.task.refunded + (two.task.price - two.task.refunded);
  const account = await json(`/api/accounts/${one.task.requester}`);
  assert.equal(account.balance_units, 1000 * 1e8 - spent, "the account paid exactly for the tokens written");
  await page.locator("#balance", { hasText: account.balance }).waitFor();
  await page.screenshot({ path: join(SHOTS, "chat-03-second-answer.png"), fullPage: true });

  // ---- a conversation over the ledger's prompt limit goes as a held input ------------
  const fruit = Array.from({ length: 300 }, (_, i) => ["apple", "pear", "plum"][i % 3]).join(" ");
  const q3 = `Here is a list of fruit: ${fruit}. ${"Read it carefully. ".repeat(150)}Which fruit comes first?`;
  const long = await send(page, q3, 8, 2);
  const three = await checked(page, long.answer, long.id, 8);
  assert.ok(three.task.input && three.task.input.size > 4096, JSON.stringify(three.task.input));
  assert.equal(three.task.prompt, `sha256:${three.task.input.sha256}`);
  const held = await (await fetch(`${base}/api/blobs/${three.task.input.sha256}`)).text();
  assert.equal(createHash("sha256").update(held).digest("hex"), three.task.input.sha256);
  assert.deepEqual(JSON.parse(held).messages.map((m) => m.content), [q1, one.output.text, q2, two.output.text, q3]);

  // ---- a fourth answer is stopped while it streams -----------------------------------
  const third = await send(page, "Tell me a long story about a dragon and a knight.", 400, 3);
  await page.getByRole("button", { name: "Stop" }).waitFor();
  await page.waitForFunction((id) => window.__streamed.some((s) => s.task === String(id)), third.id, { timeout: 120_000 });
  await page.getByRole("button", { name: "Stop" }).click();
  await third.answer.locator(".note", { hasText: "This answer is left out of the conversation." }).waitFor();
  assert.equal(await third.answer.evaluate((b) => b.classList.contains("stopped")), true);
  assert.equal(await page.getByRole("button", { name: "Stop" }).isVisible(), false);
  assert.equal(await page.getByRole("button", { name: "Send" }).isEnabled(), true);
  await page.screenshot({ path: join(SHOTS, "chat-04-stopped.png"), fullPage: true });

  // Every control has a label.
  const unlabelled = await page.evaluate(() =>
    [...document.querySelectorAll("input, select, textarea")].filter((c) => c.labels.length === 0 && !c.getAttribute("aria-label")).map((c) => c.outerHTML),
  );
  assert.deepEqual(unlabelled, []);
  assert.deepEqual(problems, []);
  await ctx.close();
});
