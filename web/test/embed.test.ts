// The embedding view's rules, which must agree with flownet-core's embedding module.

import { strict as assert } from "node:assert";
import { test } from "node:test";

import { cosine, embeddingMaxUnits, embeddingPrompt, embeddingTexts, readEmbeddings } from "../src/embed.js";

test("one text per non-blank line, sent as the node reads it", () => {
  assert.deepEqual(embeddingTexts("a cat\n\n  \r\na dog\n"), ["a cat", "a dog"]);
  assert.equal(embeddingPrompt(["a cat"]), "a cat");
  assert.equal(embeddingPrompt(["a cat", "a dog"]), '{"input":["a cat","a dog"]}');
  // A single text that is itself an input object is wrapped, so it is read as text.
  assert.equal(embeddingPrompt(['{"input": "x"}']), '{"input":["{\\"input\\": \\"x\\"}"]}');
  assert.throws(() => embeddingPrompt([]), /write a text/);
  assert.throws(() => embeddingPrompt(Array(257).fill("x")), /at most 256/);
});

test("the escrow bound counts UTF-8 bytes plus two per text", () => {
  // flownet-core: max_units(["é", "한"]) = 4 + 5.
  assert.equal(embeddingMaxUnits(["é", "한"]), 9);
  assert.equal(embeddingMaxUnits(["abc"]), 5);
});

test("outputs are read and compared", () => {
  const body = { model: "m", dimensions: 2, embeddings: [[0.6, 0.8], [1, 0]], tokens: [3, 4], truncated: [false, false], usage: { prompt_tokens: 7, total_tokens: 7 } };
  const e = readEmbeddings(new TextEncoder().encode(JSON.stringify(body)).buffer as ArrayBuffer);
  assert.ok(e);
  assert.ok(Math.abs(cosine(e.embeddings[0], e.embeddings[1]) - 0.6) < 1e-12);
  assert.equal(cosine([0, 0], [1, 0]), 0);
  assert.equal(readEmbeddings(new TextEncoder().encode("[1,2]").buffer as ArrayBuffer), null);
  assert.equal(readEmbeddings(new TextEncoder().encode(JSON.stringify({ ...body, dimensions: 3 })).buffer as ArrayBuffer), null);
});
