// The chat view's stream reader and cost rule, against streams cut at awkward places.

import { strict as assert } from "node:assert";
import { test } from "node:test";

import { conversationPrompt, displayMime, meteredCost, readChatStream } from "../src/chat.js";

function streamOf(parts: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const p of parts) c.enqueue(enc.encode(p));
      c.close();
    },
  });
}

const chunk = (content: string | null, extra: object = {}) =>
  `data: ${JSON.stringify({ object: "chat.completion.chunk", choices: [{ index: 0, delta: content === null ? {} : { content }, finish_reason: null }], ...extra })}\n\n`;

test("text arrives piece by piece, whatever the network's cuts", async () => {
  const last = `data: ${JSON.stringify({ choices: [{ delta: {}, finish_reason: "length" }], flownet: { task_id: 3, sha256: "ab", price: "0.08", cost: "0.014", refunded: "0.066", units: 7 } })}\n\n`;
  const whole = chunk("") + chunk("Héllo") + chunk(", wörld") + last + "data: [DONE]\n\n";
  const bytes = new TextEncoder().encode(whole);
  // Cut every 5 bytes, splitting multi-byte characters and events.
  const raw: Uint8Array[] = [];
  for (let i = 0; i < bytes.length; i += 5) raw.push(bytes.slice(i, i + 5));
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (const r of raw) c.enqueue(r);
      c.close();
    },
  });
  const seen: string[] = [];
  const end = await readChatStream(stream, (t) => seen.push(t));
  assert.deepEqual(seen, ["Héllo", ", wörld"]);
  assert.equal(end.done, true);
  assert.equal(end.finishReason, "length");
  assert.equal(end.fields?.units, 7);
  assert.equal(end.fields?.refunded, "0.066");
  assert.equal(end.error, undefined);
});

test("an error event is reported and a stream cut short is not done", async () => {
  const end = await readChatStream(
    streamOf([chunk("a"), `data: ${JSON.stringify({ error: { message: "task 4 is expired", code: "task_not_delivered" } })}\n\n`]),
    () => {},
  );
  assert.equal(end.error?.code, "task_not_delivered");
  assert.equal(end.done, false);
});

test("the conversation and the escrow are what the model and the ledger read", () => {
  assert.equal(
    conversationPrompt([{ role: "user", content: "hi \"there\"" }]),
    '{"messages":[{"role":"user","content":"hi \\"there\\""}]}',
  );
  // 0.02 FLOWNET per 1,000 tokens (2,000,000 units) for 32 tokens; rounded down.
  assert.equal(meteredCost(2_000_000, 32), 64_000);
  assert.equal(meteredCost(3, 100), 0);
});

test("outputs are shown only as the raster type the manifest declares", () => {
  assert.equal(displayMime("image/png"), "image/png");
  assert.equal(displayMime("image/svg+xml"), null);
  assert.equal(displayMime("text/html"), null);
  assert.equal(displayMime(null), null);
  assert.equal(displayMime(undefined), null);
});
