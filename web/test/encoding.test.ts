// The page's encoder against the core's: test/vectors.json is written and checked by
// flownet-cli's tests (browser_test_vectors_match_the_core). Runs on Node's WebCrypto,
// the same API the page signs with.

import { strict as assert } from "node:assert";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  type Envelope,
  canonicalBytes,
  deriveAddress,
  formatAmount,
  hex,
  lowS,
  signingMessage,
  unhex,
} from "../src/encoding.js";

interface Vector {
  envelope: Envelope;
  canonical_hex: string;
  sha256_of_message: string;
  signature: string;
}

const vectors = JSON.parse(
  readFileSync(new URL("../../test/vectors.json", import.meta.url), "utf8"),
) as { private_key: string; public_key: string; address: string; envelopes: Vector[] };

const P256 = { name: "ECDSA", namedCurve: "P-256" } as const;
const ECDSA_SHA256 = { name: "ECDSA", hash: "SHA-256" } as const;
const N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

function b64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString("base64url");
}

const pub = unhex(vectors.public_key, 64);
const jwk = { kty: "EC", crv: "P-256", x: b64url(pub.slice(0, 32)), y: b64url(pub.slice(32)) };

test("canonical bytes and signed digests match the core", async () => {
  for (const v of vectors.envelopes) {
    assert.equal(hex(canonicalBytes(v.envelope)), v.canonical_hex, v.envelope.action.type);
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", signingMessage(v.envelope)));
    assert.equal(hex(digest), v.sha256_of_message, v.envelope.action.type);
  }
});

test("the address derives from the key as the ledger derives it", () => {
  assert.equal(deriveAddress(pub), vectors.address);
});

test("WebCrypto verifies the core's signatures, and the core's digest is what WebCrypto signs", async () => {
  const verifier = await crypto.subtle.importKey("jwk", jwk, P256, false, ["verify"]);
  const signer = await crypto.subtle.importKey(
    "jwk",
    { ...jwk, d: b64url(unhex(vectors.private_key, 32)) },
    P256,
    false,
    ["sign"],
  );
  for (const v of vectors.envelopes) {
    const message = signingMessage(v.envelope);
    assert.ok(await crypto.subtle.verify(ECDSA_SHA256, verifier, unhex(v.signature), message));
    const ours = lowS(new Uint8Array(await crypto.subtle.sign(ECDSA_SHA256, signer, message)));
    assert.ok(await crypto.subtle.verify(ECDSA_SHA256, verifier, ours, message));
    assert.ok(BigInt("0x" + hex(ours.slice(32))) <= N / 2n, "low s");
    // A tampered envelope does not verify.
    const other = { ...v.envelope, sequence: v.envelope.sequence + 1 };
    assert.ok(!(await crypto.subtle.verify(ECDSA_SHA256, verifier, ours, signingMessage(other))));
  }
});

test("low-s normalisation keeps the signature valid", async () => {
  const key = await crypto.subtle.generateKey(P256, false, ["sign", "verify"]);
  const message = new TextEncoder().encode("twins");
  let sawHigh = false;
  for (let i = 0; i < 16; i++) {
    const sig = new Uint8Array(await crypto.subtle.sign(ECDSA_SHA256, key.privateKey, message));
    const low = lowS(sig);
    sawHigh ||= hex(low) !== hex(sig);
    assert.ok(await crypto.subtle.verify(ECDSA_SHA256, key.publicKey, low, message));
  }
  assert.ok(sawHigh, "16 WebCrypto signatures without one high s is a 1 in 65536 event");
});

test("amounts format as the core formats them", () => {
  assert.equal(formatAmount(0), "0");
  assert.equal(formatAmount(50_000_000), "0.5");
  assert.equal(formatAmount(1), "0.00000001");
  assert.equal(formatAmount(100_000_000_000n), "1000");
  assert.equal(formatAmount(1_225_000_000), "12.25");
});

test("encoding refuses what the core could not have signed", () => {
  const env = vectors.envelopes[2].envelope;
  assert.throws(() => canonicalBytes({ ...env, signer: "0x1234" }));
  assert.throws(() => canonicalBytes({ ...env, sequence: -1 }));
  assert.throws(() => canonicalBytes({ ...env, action: { type: "rate", task: 1, stars: 300 } }));
});
