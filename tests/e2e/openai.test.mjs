// The `openai` npm package, which nobody here wrote, against the gateway's chat API:
// a node serving the real SmolLM2 inside the gateway's process, an API key made with
// `flownet web keys create`, the client pointed at the gateway by its base URL only.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, test } from "node:test";

import OpenAI from "openai";

import { Market, assertListensOnlyOnLoopback, freePorts } from "./harness.mjs";

const MODEL = "smollm2-135m-instruct";
const QUESTION = [{ role: "user", content: "What is the capital of France? Answer in one sentence." }];
let market;
let client;

before(async () => {
  market = new Market();
  const [gatewayPort, nodePort] = await freePorts(2);
  market.run("chatter", ["init"]);
  market.run("chatter", [
    "node", "register", "--name", "Chat node", "--endpoint", `http://127.0.0.1:${nodePort}`,
    "--model", `${MODEL}=0.2`,
  ]);
  const { key } = market.run(
    "chatter",
    ["web", "keys", "create", "--label", "npm", "--max-price", "1", "--faucet", "--rate", "600/60"],
    true,
  );
  market.gateway = market.spawn("chatter", ["web", "--listen", `127.0.0.1:${gatewayPort}`, "--node", "--threads", "1"]);
  market.url = `http://127.0.0.1:${gatewayPort}`;
  await market.waitFor(`${market.url}/healthz`, market.gateway);
  await market.waitFor(`http://127.0.0.1:${nodePort}/healthz`, market.gateway);
  assertListensOnlyOnLoopback(market.gateway.pid, "the gateway", 2);
  client = new OpenAI({ apiKey: key, baseURL: `${market.url}/v1`, maxRetries: 0, timeout: 120_000 });
});

after(async () => {
  await market?.stop();
});

async function delivered(taskId) {
  const { task } = await (await fetch(`${market.url}/api/tasks/${taskId}`)).json();
  const body = Buffer.from(await (await fetch(`${market.url}/api/blobs/${task.result.sha256}?task=${taskId}`)).arrayBuffer());
  assert.equal(createHash("sha256").update(body).digest("hex"), task.result.sha256);
  return { task, answer: JSON.parse(body.toString("utf8")) };
}

test("the chat model is listed with its kind and price per 1,000 tokens", async () => {
  const m = await client.models.retrieve(MODEL);
  assert.equal(m.id, MODEL);
  assert.equal(m.kind, "text-generation");
  assert.equal(m.pricing.unit, "thousand_tokens");
});

test("a chat answer is paid per token and is the answer on the ledger", async () => {
  const r = await client.chat.completions.create({ model: MODEL, messages: QUESTION, max_tokens: 24, temperature: 0, seed: 7 });
  const text = r.choices[0].message.content;
  assert.ok(text.length > 0);
  assert.ok(["stop", "length"].includes(r.choices[0].finish_reason));
  assert.ok(r.usage.completion_tokens > 0 && r.usage.completion_tokens <= 24);
  const { task, answer } = await delivered(r.flownet.task_id);
  assert.equal(answer.text, text);
  assert.equal(task.units, r.usage.completion_tokens);
  assert.equal(task.max_units, 24);
});

test("a streamed chat relays the node's tokens, then usage in a last chunk", async () => {
  const stream = await client.chat.completions.create({
    model: MODEL, messages: QUESTION, max_tokens: 24, temperature: 0, seed: 7,
    stream: true, stream_options: { include_usage: true },
  });
  let text = "";
  let finish = null;
  let usage = null;
  let taskId = null;
  for await (const chunk of stream) {
    if (chunk.choices.length > 0) {
      text += chunk.choices[0].delta?.content ?? "";
      if (chunk.choices[0].finish_reason) {
        finish = chunk.choices[0].finish_reason;
        taskId = chunk.flownet.task_id;
      }
    } else {
      assert.equal(usage, null, "one usage chunk");
      usage = chunk.usage;
    }
  }
  assert.ok(["stop", "length"].includes(finish));
  assert.ok(usage.completion_tokens > 0 && usage.completion_tokens <= 24);
  const { task, answer } = await delivered(taskId);
  assert.equal(answer.text, text);
  assert.equal(task.units, usage.completion_tokens);
});

test("requests the gateway cannot serve answer OpenAI's error shape", async () => {
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: [] }),
    (e) => e instanceof OpenAI.BadRequestError,
  );
  await assert.rejects(
    client.chat.completions.create({ model: MODEL, messages: QUESTION, n: 3 }),
    (e) => e instanceof OpenAI.BadRequestError && typeof e.message === "string",
  );
  await assert.rejects(
    client.chat.completions.create({ model: "gpt-4o", messages: QUESTION }),
    (e) => e instanceof OpenAI.NotFoundError,
  );
});
