// The page's proof-of-work solver against flownet-chain's (flow::pow's
// the_work_hash_vector), and a proof the sponsor's check would accept.

import { strict as assert } from "node:assert";
import { test } from "node:test";

import { hex } from "../src/encoding.js";
import { leadingZeroBits, proofHeader, solve, workHash } from "../src/pow.js";

test("the work hash and the nonce are the sponsor's", async () => {
  const challenge = new Uint8Array(56).fill(0xab);
  const key = new Uint8Array(64).fill(0x01);
  assert.equal(await solve(challenge, key, 8), 200);
  assert.equal(hex(workHash(challenge, key, 200)), "00fe3256a98e5afb5d781c6297d55990a24bc5de989d44174ac1c4e840ba574f");
});

test("leading zero bits", () => {
  assert.equal(leadingZeroBits(new Uint8Array([0xff])), 0);
  assert.equal(leadingZeroBits(new Uint8Array([0x00, 0x10])), 11);
  assert.equal(leadingZeroBits(new Uint8Array([0, 0])), 16);
});

test("a proof header carries the challenge and a nonce that does the work", async () => {
  const challenge = "cd".repeat(56);
  const key = "02".repeat(64);
  const header = await proofHeader({ challenge, difficulty: 12, expires: 0 }, key);
  const [c, n] = header.split(".");
  assert.equal(c, challenge);
  const bytes = (s: string) => Uint8Array.from(s.match(/../g)!.map((b) => parseInt(b, 16)));
  assert.ok(leadingZeroBits(workHash(bytes(c), bytes(key), Number(n))) >= 12);
  await assert.rejects(proofHeader({ challenge, difficulty: 41, expires: 0 }, key));
});
