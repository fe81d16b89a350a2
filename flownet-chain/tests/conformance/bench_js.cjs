// Encode + sign throughput of @onflow/sdk with Node's OpenSSL ECDSA, for
// the side-by-side benchmark (examples/flow_sign_bench.rs). Reads the case
// written by the benchmark and prints {"tx_per_s": n}.
"use strict";
const fs = require("fs");
const crypto = require("crypto");
const sdk = require("@onflow/sdk");

const input = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const seconds = Number(process.argv[3] || "2");
const c = input.case;
const sans = (a) => a.replace(/^0x/, "");

function keyObject(privHex, pubHex) {
  // A P-256 private key as a JWK, so OpenSSL signs with it.
  const b64 = (hex) => Buffer.from(hex, "hex").toString("base64url");
  return crypto.createPrivateKey({
    key: { kty: "EC", crv: "P-256", d: b64(privHex), x: b64(pubHex.slice(0, 64)), y: b64(pubHex.slice(64)) },
    format: "jwk",
  });
}
const proposerKey = keyObject(c.proposer_key.private_key, c.proposer_key.public_key);
const payerKey = keyObject(c.payer_key.private_key, c.payer_key.public_key);
// sign(sha3-256) hashes tag ‖ message itself; ieee-p1363 gives r ‖ s.
const sign = (key, hexMessage) =>
  crypto.sign("sha3-256", Buffer.from(hexMessage, "hex"), { key, dsaEncoding: "ieee-p1363" }).toString("hex");

function once(seq) {
  const tx = {
    cadence: c.script,
    refBlock: c.ref_block,
    computeLimit: 9999,
    arguments: c.arguments.map((a) => JSON.parse(a)),
    proposalKey: { address: sans(c.proposer), keyId: 0, sequenceNum: seq },
    payer: sans(c.payer),
    authorizers: [sans(c.proposer)],
    payloadSigs: [],
    envelopeSigs: [],
  };
  tx.payloadSigs.push({ address: sans(c.proposer), keyId: 0, sig: sign(proposerKey, sdk.encodeTransactionPayload(tx)) });
  tx.envelopeSigs.push({ address: sans(c.payer), keyId: 0, sig: sign(payerKey, sdk.encodeTransactionEnvelope(tx)) });
  return tx;
}

let n = 0;
const start = process.hrtime.bigint();
const limit = BigInt(Math.round(seconds * 1e9));
while (process.hrtime.bigint() - start < limit) {
  once(n++);
}
const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
process.stdout.write(JSON.stringify({ sdk: "@onflow/sdk", tx_per_s: n / elapsed, n }));
